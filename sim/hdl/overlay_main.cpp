// Driver of the overlay testbench (overlay_tb.v) in Verilator: toggles the clock until the
// testbench finishes, then prints one line of results for sim/overlay_sim.py to parse.
#include <cstdio>
#include <memory>
#include "Voverlay_tb.h"
#include "verilated.h"

int main(int argc, char** argv) {
    auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(argc, argv);
    auto tb = std::make_unique<Voverlay_tb>(context.get());
    tb->clk = 0;
    tb->eval();
    while (!tb->finished && !context->gotFinish()) {
        tb->clk = 1;
        tb->eval();
        tb->clk = 0;
        tb->eval();
    }
    tb->final();
    std::printf("omniconv-sim ok=%d error=%d error_code=%d error_index=%u cycles=%u wall=%u\n",
                tb->ok, tb->error, tb->error_code, tb->error_index, tb->cycles, tb->wall);
    return tb->ok ? 0 : 1;
}
