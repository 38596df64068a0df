// A DRAM model for simulating the overlay top in Verilator: an AXI4 slave over a word
// memory, loaded from and dumped to hex files, so that no Python runs per cycle.
//
// * Memory: MEM_WORDS words of DATA_BITS bits; byte address a lives in word
//   a / (DATA_BITS/8), little-endian inside the word (the program image's layout).
//   Addresses past the memory answer SLVERR (reads return 0, writes are dropped).
// * Reads: up to 8 bursts queued; a burst's first beat is offered `latency` cycles after
//   its address is taken (at the earliest), then one beat a cycle, bursts back to back
//   (INCR, full-width beats).  Writes: up to 8 burst addresses queued, W beats with byte
//   strobes to the oldest, one B per burst in order.  With latency 0 and no stalls it never
//   holds the overlay back: the ideal memory the cycle model assumes.
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

    // -- reads: up to 8 bursts queued (ARREADY while the queue has room); a burst's first
    // beat is offered once `latency` cycles have passed since its address was taken, then
    // one beat a cycle, the next burst's beats straight after the last one's
    localparam QBITS = 3;
    reg [ADDR_BITS-1:0]  ar_q_addr [0:(1<<QBITS)-1];
    reg [7:0]            ar_q_len  [0:(1<<QBITS)-1];
    reg [31:0]           ar_q_time [0:(1<<QBITS)-1];
    reg [QBITS:0]        ar_head, ar_tail;
    reg [31:0]           now;
    reg                  r_busy;
    reg [ADDR_BITS-1:0]  r_addr;
    reg [7:0]            r_left;
    wire ar_empty = ar_head == ar_tail;
    wire ar_full  = (ar_tail - ar_head) == (1 << QBITS);
    wire [QBITS-1:0] ar_h = ar_head[QBITS-1:0];
    assign arready = !ar_full;
    assign rvalid  = r_busy && !hold;
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
            ar_head <= 0;
            ar_tail <= 0;
            r_busy  <= 1'b0;
            now     <= 32'd0;
        end else begin
            now <= now + 32'd1;
            if (arvalid && arready) begin
                ar_q_addr[ar_tail[QBITS-1:0]] <= araddr & ~{{(ADDR_BITS-SHIFT){1'b0}}, {SHIFT{1'b1}}};
                ar_q_len[ar_tail[QBITS-1:0]]  <= arlen;
                ar_q_time[ar_tail[QBITS-1:0]] <= now + {16'd0, latency};
                ar_tail <= ar_tail + 1'b1;
            end
            if (r_busy && rvalid && rready) begin
                r_addr <= r_addr + BYTES;
                r_left <= r_left - 8'd1;
                if (r_left == 0) r_busy <= 1'b0;
            end
            if ((!r_busy || (rvalid && rready && r_left == 0)) && !ar_empty
                    && now >= ar_q_time[ar_h]) begin
                r_busy  <= 1'b1;
                r_addr  <= ar_q_addr[ar_h];
                r_left  <= ar_q_len[ar_h];
                ar_head <= ar_head + 1'b1;
            end
        end
    end

    // -- writes: up to 8 bursts' addresses queued (AWREADY while the queue has room); W
    // beats go to the oldest queued burst; a B response per completed burst, in order
    reg [ADDR_BITS-1:0]  aw_q_addr [0:(1<<QBITS)-1];
    reg [QBITS:0]        aw_head, aw_tail;
    reg [ADDR_BITS-1:0]  w_addr;
    reg                  w_first;
    reg [7:0]            b_count;
    reg                  b_err;
    integer              i;
    wire aw_empty = aw_head == aw_tail;
    wire aw_full  = (aw_tail - aw_head) == (1 << QBITS);
    wire [ADDR_BITS-1:0] w_at = w_first ? aw_q_addr[aw_head[QBITS-1:0]] : w_addr;
    assign awready = !aw_full;
    assign wready  = !aw_empty && !hold;
    assign bvalid  = b_count != 0;
    assign bresp   = b_err ? 2'b10 : 2'b00;
    always @(posedge clk) begin
        if (rst) begin
            aw_head <= 0;
            aw_tail <= 0;
            w_first <= 1'b1;
            b_count <= 8'd0;
            b_err   <= 1'b0;
        end else begin
            if (awvalid && awready) begin
                aw_q_addr[aw_tail[QBITS-1:0]] <= awaddr & ~{{(ADDR_BITS-SHIFT){1'b0}}, {SHIFT{1'b1}}};
                aw_tail <= aw_tail + 1'b1;
            end
            if (wvalid && wready) begin
                if (in_range(w_at)) begin
                    for (i = 0; i < BYTES; i = i + 1)
                        if (wstrb[i]) mem[w_at >> SHIFT][8*i +: 8] <= wdata[8*i +: 8];
                end else begin
                    b_err <= 1'b1;
                end
                w_addr  <= w_at + BYTES;
                w_first <= wlast;
                if (wlast) aw_head <= aw_head + 1'b1;
            end
            case ({wvalid && wready && wlast, bvalid && bready})
                2'b10: b_count <= b_count + 8'd1;
                2'b01: b_count <= b_count - 8'd1;
                default: ;
            endcase
        end
    end
endmodule
