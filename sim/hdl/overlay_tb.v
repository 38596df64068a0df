// The overlay top (Amaranth's Verilog, module overlay_top) on the DRAM model (axi_dram.v,
// one read port for its data master and one for its instruction master),
// for Verilator with the C++ driver overlay_main.cpp: no Python runs per cycle.
//
// Plusargs: +image=FILE (hex, one DATA_BITS word a line: the DRAM image from address 0),
// +dump=FILE (the memory written back at the end: its first +dump_words=N words, default
// all), +program=HEX (the program's byte
// address), +latency=N, +stall=N and +bandwidth=N (the DRAM model's: N/256 bytes a
// cycle, 0 unlimited), +timeout=N (cycles), +trace=FILE
// (one line per cycle in which the controller hands an engine an instruction or an engine
// reports one done: "TAKE DONE CYCLES", the engine bits in hex, then the top's counter).
// The testbench holds reset for 4 cycles, pulses start, waits for done or error (or the
// timeout), dumps the memory and raises `finished`; the driver then prints the counters.
module overlay_tb #(
    parameter DATA_BITS = 128,
    parameter MEM_WORDS = 65536
) (
    input  wire        clk,
    output reg         finished,
    output wire        ok,
    output wire [31:0] cycles,
    output reg  [31:0] wall,
    output wire        error,
    output wire [7:0]  error_code,
    output wire [31:0] error_index
);
    reg         rst;
    reg         start;
    reg [39:0]  program_addr;
    reg [15:0]  latency;
    reg [7:0]   stall;
    reg [23:0]  bandwidth;
    reg [31:0]  timeout;
    reg [1023:0] image_file, dump_file, trace_file;
    integer     dump_words;
    integer     trace_fd;
    wire [3:0]  trace_take, trace_done;
    reg [3:0]   reset_left;
    reg         started;

    wire [39:0] araddr, awaddr, i_araddr;
    wire [7:0]  arlen, awlen, i_arlen;
    wire [2:0]  arsize, awsize, i_arsize;
    wire [1:0]  arburst, awburst, rresp, bresp, i_arburst, i_rresp;
    wire        arvalid, arready, rlast, rvalid, rready;
    wire        i_arvalid, i_arready, i_rlast, i_rvalid, i_rready;
    wire [DATA_BITS-1:0]   i_rdata;
    wire        awvalid, awready, wlast, wvalid, wready, bvalid, bready;
    wire [DATA_BITS-1:0]   rdata, wdata;
    wire [DATA_BITS/8-1:0] wstrb;
    wire        busy, done, engine_error, fetch_error;
    wire [1:0]  error_engine;
    wire [2:0]  code;

    assign ok = done && !error;
    assign error_code = {5'd0, code};

    overlay_top dut (
        .clk(clk), .rst(rst), .start(start), .\program (program_addr),
        .busy(busy), .done(done), .error(error), .error_code(code),
        .error_index(error_index), .engine_error(engine_error),
        .error_engine(error_engine), .fetch_error(fetch_error), .cycles(cycles),
        .trace_take(trace_take), .trace_done(trace_done),
        .m_axi_araddr(araddr), .m_axi_arlen(arlen), .m_axi_arsize(arsize),
        .m_axi_arburst(arburst), .m_axi_arvalid(arvalid), .m_axi_arready(arready),
        .m_axi_rdata(rdata), .m_axi_rresp(rresp), .m_axi_rlast(rlast),
        .m_axi_rvalid(rvalid), .m_axi_rready(rready),
        .m_axi_instr_araddr(i_araddr), .m_axi_instr_arlen(i_arlen),
        .m_axi_instr_arsize(i_arsize), .m_axi_instr_arburst(i_arburst),
        .m_axi_instr_arvalid(i_arvalid), .m_axi_instr_arready(i_arready),
        .m_axi_instr_rdata(i_rdata), .m_axi_instr_rresp(i_rresp),
        .m_axi_instr_rlast(i_rlast), .m_axi_instr_rvalid(i_rvalid),
        .m_axi_instr_rready(i_rready),
        .m_axi_awaddr(awaddr), .m_axi_awlen(awlen), .m_axi_awsize(awsize),
        .m_axi_awburst(awburst), .m_axi_awvalid(awvalid), .m_axi_awready(awready),
        .m_axi_wdata(wdata), .m_axi_wstrb(wstrb), .m_axi_wlast(wlast),
        .m_axi_wvalid(wvalid), .m_axi_wready(wready),
        .m_axi_bresp(bresp), .m_axi_bvalid(bvalid), .m_axi_bready(bready),
        // the host's AXI4-Lite registers are idle: this bench drives the plain ports
        .s_axil_awaddr(8'd0), .s_axil_awvalid(1'b0), .s_axil_awready(),
        .s_axil_wdata(32'd0), .s_axil_wstrb(4'd0), .s_axil_wvalid(1'b0), .s_axil_wready(),
        .s_axil_bresp(), .s_axil_bvalid(), .s_axil_bready(1'b1),
        .s_axil_araddr(8'd0), .s_axil_arvalid(1'b0), .s_axil_arready(),
        .s_axil_rdata(), .s_axil_rresp(), .s_axil_rvalid(), .s_axil_rready(1'b1)
    );

    // read port 0: the data port (loads), 1: the instruction port (fetch)
    axi_dram #(.DATA_BITS(DATA_BITS), .MEM_WORDS(MEM_WORDS), .READ_PORTS(2)) mem (
        .clk(clk), .rst(rst), .latency(latency), .stall(stall), .bandwidth(bandwidth),
        .araddr({i_araddr, araddr}), .arlen({i_arlen, arlen}),
        .arvalid({i_arvalid, arvalid}), .arready({i_arready, arready}),
        .rdata({i_rdata, rdata}), .rresp({i_rresp, rresp}), .rlast({i_rlast, rlast}),
        .rvalid({i_rvalid, rvalid}), .rready({i_rready, rready}),
        .awaddr(awaddr), .awlen(awlen), .awvalid(awvalid), .awready(awready),
        .wdata(wdata), .wstrb(wstrb), .wlast(wlast), .wvalid(wvalid), .wready(wready),
        .bresp(bresp), .bvalid(bvalid), .bready(bready)
    );

    initial begin
        if (!$value$plusargs("image=%s", image_file)) image_file = "";
        if (!$value$plusargs("dump=%s", dump_file)) dump_file = "";
        if (!$value$plusargs("dump_words=%d", dump_words) || dump_words < 1
            || dump_words > MEM_WORDS) dump_words = MEM_WORDS;
        if (!$value$plusargs("program=%h", program_addr)) program_addr = 40'd0;
        if (!$value$plusargs("latency=%d", latency)) latency = 16'd0;
        if (!$value$plusargs("stall=%d", stall)) stall = 8'd0;
        if (!$value$plusargs("bandwidth=%d", bandwidth)) bandwidth = 24'd0;
        if (!$value$plusargs("timeout=%d", timeout)) timeout = 32'd100000000;
        if (!$value$plusargs("trace=%s", trace_file)) trace_file = "";
        trace_fd = 0;
        if (trace_file != "") trace_fd = $fopen(trace_file, "w");
        if (image_file != "") $readmemh(image_file, mem.mem);
        rst = 1'b1;
        start = 1'b0;
        reset_left = 4'd4;
        started = 1'b0;
        finished = 1'b0;
        wall = 32'd0;
    end

    always @(posedge clk) begin
        if (trace_fd != 0 && !finished && (trace_take != 4'd0 || trace_done != 4'd0))
            $fwrite(trace_fd, "%h %h %0d\n", trace_take, trace_done, cycles);
        if (!finished) wall <= wall + 32'd1;
        start <= 1'b0;
        if (reset_left != 0) begin
            reset_left <= reset_left - 4'd1;
            rst <= reset_left != 4'd1;
        end else if (!started) begin
            start <= 1'b1;
            started <= 1'b1;
        end else if (!finished && !start && !busy && (done || error || wall >= timeout)) begin
            finished <= 1'b1;
            if (dump_file != "") $writememh(dump_file, mem.mem, 0, dump_words - 1);
            if (trace_fd != 0) $fclose(trace_fd);
        end else if (!finished && wall >= timeout) begin
            finished <= 1'b1;
            if (dump_file != "") $writememh(dump_file, mem.mem, 0, dump_words - 1);
            if (trace_fd != 0) $fclose(trace_fd);
        end
    end
endmodule
