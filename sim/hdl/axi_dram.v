// A DRAM model for simulating the overlay top in Verilator: an AXI4 slave over a word
// memory, loaded from and dumped to hex files, so that no Python runs per cycle.
//
// * Memory: MEM_WORDS words of DATA_BITS bits; byte address a lives in word
//   a / (DATA_BITS/8), little-endian inside the word (the program image's layout).
//   Addresses past the memory answer SLVERR (reads return 0, writes are dropped).
// * Reads: READ_PORTS independent AXI4 read ports (the overlay top's data port and its
//   instruction port), their signals packed side by side, port p in slice p.  Each queues
//   up to 32 bursts (more than the overlay's engines keep in flight); a burst's first beat
//   is offered `latency` + 1 cycles after the cycle its address is taken (at the
//   earliest), then one beat a cycle, bursts back to back (INCR, full-width beats).  The
//   ports do not slow each other.
// * Writes: up to 32 burst addresses queued, W beats with byte strobes to the oldest, one B
//   per burst in order.  With latency 0 and no stalls the model never holds the overlay
//   back: the ideal memory the cycle model assumes.
// * Random back-pressure: with `stall` = s (0..255), each cycle a 16-bit LFSR decides,
//   with probability s/256, to hold RVALID and WREADY low.
// * Bandwidth: with `bandwidth` = b > 0, the ports share b/256 bytes a cycle: a credit
//   grows by b a cycle (up to one beat's worth plus b, so an idle memory banks no more than
//   a beat) and every beat, read or written, spends BYTES·256 of it; a beat waits (RVALID,
//   WREADY low) until the credit covers it, the read ports first, in port order.  0: every
//   port moves a beat a cycle.
// * `latency`, `stall` and `bandwidth` are inputs (set from plusargs by the testbench): one
//   build serves every setting.
module axi_dram #(
    parameter DATA_BITS = 128,
    parameter ADDR_BITS = 40,
    parameter MEM_WORDS = 65536,
    parameter READ_PORTS = 2
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire [15:0]             latency,
    input  wire [7:0]              stall,
    input  wire [23:0]             bandwidth,
    input  wire [READ_PORTS*ADDR_BITS-1:0] araddr,
    input  wire [READ_PORTS*8-1:0]         arlen,
    input  wire [READ_PORTS-1:0]           arvalid,
    output wire [READ_PORTS-1:0]           arready,
    output wire [READ_PORTS*DATA_BITS-1:0] rdata,
    output wire [READ_PORTS*2-1:0]         rresp,
    output wire [READ_PORTS-1:0]           rlast,
    output wire [READ_PORTS-1:0]           rvalid,
    input  wire [READ_PORTS-1:0]           rready,
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

    // bandwidth: the credit in 1/256 bytes, and what is left of it after each port's beat
    localparam [31:0] BEAT_COST = BYTES * 256;
    wire        limited = bandwidth != 24'd0;
    reg  [31:0] credit;
    wire [31:0] avail [0:READ_PORTS];
    wire [READ_PORTS-1:0] r_take;
    assign avail[0] = credit;
    genvar g;
    generate
        for (g = 0; g < READ_PORTS; g = g + 1) begin : spend
            assign avail[g + 1] = avail[g] - (r_take[g] ? BEAT_COST : 32'd0);
        end
    endgenerate
    wire        w_ok = !limited || avail[READ_PORTS] >= BEAT_COST;
    wire        w_take = wvalid && wready;
    wire [31:0] spent = avail[READ_PORTS] - (w_take ? BEAT_COST : 32'd0);
    wire [31:0] cap = BEAT_COST + {8'd0, bandwidth};
    always @(posedge clk) begin
        if (rst || !limited) credit <= cap;
        else credit <= (spent + {8'd0, bandwidth} > cap) ? cap : spent + {8'd0, bandwidth};
    end

    function automatic in_range(input [ADDR_BITS-1:0] addr);
        in_range = (addr >> SHIFT) < MEM_WORDS;
    endfunction

    // -- reads, per port: up to 32 bursts queued (ARREADY while the queue has room); a
    // burst's first beat is offered `latency` + 1 cycles after its address was taken (the
    // next cycle with no latency, as sim/bench/axi_memory.py's), then one beat a cycle, the
    // next burst's beats straight after the last one's
    localparam QBITS = 5;
    reg [31:0] now;
    always @(posedge clk) begin
        if (rst) now <= 32'd0;
        else now <= now + 32'd1;
    end
    genvar p;
    generate
        for (p = 0; p < READ_PORTS; p = p + 1) begin : rd
            reg [ADDR_BITS-1:0]  q_addr [0:(1<<QBITS)-1];
            reg [7:0]            q_len  [0:(1<<QBITS)-1];
            reg [31:0]           q_time [0:(1<<QBITS)-1];
            reg [QBITS:0]        head, tail;
            reg                  busy;
            reg [ADDR_BITS-1:0]  addr;
            reg [7:0]            left;
            wire                 empty = head == tail;
            wire                 full  = (tail - head) == (1 << QBITS);
            wire [QBITS-1:0]     h = head[QBITS-1:0];
            wire                 valid = busy && !hold && (!limited || avail[p] >= BEAT_COST);
            wire                 take = valid && rready[p];
            wire                 free = !busy || (take && left == 0);
            // with no latency and nothing queued, a burst starts as its address is taken,
            // so its first beat is offered in the next cycle (the ideal memory)
            wire                 direct = free && empty && arvalid[p] && latency == 16'd0;
            assign r_take[p]  = take;
            assign arready[p] = !full;
            assign rvalid[p]  = valid;
            assign rlast[p]   = left == 0;
            assign rdata[p*DATA_BITS +: DATA_BITS] =
                in_range(addr) ? mem[addr >> SHIFT] : {DATA_BITS{1'b0}};
            assign rresp[p*2 +: 2] = in_range(addr) ? 2'b00 : 2'b10;
            always @(posedge clk) begin
                if (rst) begin
                    head <= 0;
                    tail <= 0;
                    busy <= 1'b0;
                end else begin
                    if (arvalid[p] && !full && !direct) begin
                        q_addr[tail[QBITS-1:0]] <= araddr[p*ADDR_BITS +: ADDR_BITS]
                            & ~{{(ADDR_BITS-SHIFT){1'b0}}, {SHIFT{1'b1}}};
                        q_len[tail[QBITS-1:0]]  <= arlen[p*8 +: 8];
                        q_time[tail[QBITS-1:0]] <= now + {16'd0, latency};
                        tail <= tail + 1'b1;
                    end
                    if (take) begin
                        addr <= addr + BYTES;
                        left <= left - 8'd1;
                        if (left == 0) busy <= 1'b0;
                    end
                    if (direct) begin
                        busy <= 1'b1;
                        addr <= araddr[p*ADDR_BITS +: ADDR_BITS]
                            & ~{{(ADDR_BITS-SHIFT){1'b0}}, {SHIFT{1'b1}}};
                        left <= arlen[p*8 +: 8];
                    end else if (free && !empty && now >= q_time[h]) begin
                        busy <= 1'b1;
                        addr <= q_addr[h];
                        left <= q_len[h];
                        head <= head + 1'b1;
                    end
                end
            end
        end
    endgenerate

    // -- writes: up to 32 bursts' addresses queued (AWREADY while the queue has room); W
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
    assign wready  = !aw_empty && !hold && w_ok;
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
