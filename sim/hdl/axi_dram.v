// A DRAM model for simulating the overlay top in Verilator: an AXI4 slave over a word
// memory, loaded from and dumped to hex files, so that no Python runs per cycle.
//
// * Memory: MEM_WORDS words of DATA_BITS bits; byte address a lives in word
//   a / (DATA_BITS/8), little-endian inside the word (the program image's layout).
//   Addresses past the memory answer SLVERR (reads return 0, writes are dropped).
// * Reads: one burst at a time (ARREADY while idle); the first beat is offered `latency`
//   cycles after the address is taken, then one beat a cycle (INCR bursts, full-width
//   beats).  Writes: one burst at a time (AWREADY while idle), W beats with byte strobes,
//   then B.
// * Random back-pressure: with `stall` = s (0..255), each cycle a 16-bit LFSR decides,
//   with probability s/256, to hold RVALID and WREADY low.
// * `latency` and `stall` are inputs (set from plusargs by the testbench): one build serves
//   every setting.
module axi_dram #(
    parameter DATA_BITS = 128,
    parameter ADDR_BITS = 40,
    parameter MEM_WORDS = 65536
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire [15:0]             latency,
    input  wire [7:0]              stall,
    input  wire [ADDR_BITS-1:0]    araddr,
    input  wire [7:0]              arlen,
    input  wire                    arvalid,
    output wire                    arready,
    output reg  [DATA_BITS-1:0]    rdata,
    output reg  [1:0]              rresp,
    output wire                    rlast,
    output wire                    rvalid,
    input  wire                    rready,
    input  wire [ADDR_BITS-1:0]    awaddr,
    input  wire [7:0]              awlen,
    input  wire                    awvalid,
    output wire                    awready,
    input  wire [DATA_BITS-1:0]    wdata,
    input  wire [DATA_BITS/8-1:0]  wstrb,
    input  wire                    wlast,
    input  wire                    wvalid,
    output wire                    wready,
    output wire [1:0]              bresp,
    output wire                    bvalid,
    input  wire                    bready
);
    localparam BYTES = DATA_BITS / 8;
    localparam SHIFT = $clog2(BYTES);

    reg [DATA_BITS-1:0] mem [0:MEM_WORDS-1];

    // back-pressure: a Galois LFSR (x^16 + x^14 + x^13 + x^11 + 1)
    reg [15:0] lfsr;
    wire hold = (lfsr[7:0] < stall);
    always @(posedge clk) begin
        if (rst) lfsr <= 16'hACE1;
        else lfsr <= {1'b0, lfsr[15:1]} ^ (lfsr[0] ? 16'hB400 : 16'h0000);
    end

    function automatic in_range(input [ADDR_BITS-1:0] addr);
        in_range = (addr >> SHIFT) < MEM_WORDS;
    endfunction

    // -- reads
    reg                  r_busy;
    reg [15:0]           r_wait;
    reg [ADDR_BITS-1:0]  r_addr;
    reg [7:0]            r_left;
    assign arready = !r_busy;
    assign rvalid  = r_busy && r_wait == 0 && !hold;
    assign rlast   = r_left == 0;
    always @(*) begin
        if (in_range(r_addr)) begin
            rdata = mem[r_addr >> SHIFT];
            rresp = 2'b00;
        end else begin
            rdata = {DATA_BITS{1'b0}};
            rresp = 2'b10;
        end
    end
    always @(posedge clk) begin
        if (rst) begin
            r_busy <= 1'b0;
        end else if (!r_busy) begin
            if (arvalid) begin
                r_busy <= 1'b1;
                r_wait <= latency;
                r_addr <= araddr & ~{{(ADDR_BITS-SHIFT){1'b0}}, {SHIFT{1'b1}}};
                r_left <= arlen;
            end
        end else if (r_wait != 0) begin
            r_wait <= r_wait - 16'd1;
        end else if (rvalid && rready) begin
            r_addr <= r_addr + BYTES;
            r_left <= r_left - 8'd1;
            if (r_left == 0) r_busy <= 1'b0;
        end
    end

    // -- writes
    reg                  w_busy;
    reg                  b_pend;
    reg                  b_err;
    reg [ADDR_BITS-1:0]  w_addr;
    integer              i;
    assign awready = !w_busy && !b_pend;
    assign wready  = w_busy && !hold;
    assign bvalid  = b_pend;
    assign bresp   = b_err ? 2'b10 : 2'b00;
    always @(posedge clk) begin
        if (rst) begin
            w_busy <= 1'b0;
            b_pend <= 1'b0;
        end else begin
            if (awvalid && awready) begin
                w_busy <= 1'b1;
                b_err  <= 1'b0;
                w_addr <= awaddr & ~{{(ADDR_BITS-SHIFT){1'b0}}, {SHIFT{1'b1}}};
            end
            if (wvalid && wready) begin
                if (in_range(w_addr)) begin
                    for (i = 0; i < BYTES; i = i + 1)
                        if (wstrb[i]) mem[w_addr >> SHIFT][8*i +: 8] <= wdata[8*i +: 8];
                end else begin
                    b_err <= 1'b1;
                end
                w_addr <= w_addr + BYTES;
                if (wlast) begin
                    w_busy <= 1'b0;
                    b_pend <= 1'b1;
                end
            end
            if (b_pend && bready) b_pend <= 1'b0;
        end
    end
endmodule
