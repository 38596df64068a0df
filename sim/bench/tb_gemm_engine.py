"""cocotb side of the GEMM engine tests (launched by sim.bench.gemm_tb.rtl_gemm_batch).

The job (``OMNICONV_TB_JOB``) lists GEMM cases; each runs after a reset through
:func:`sim.bench.gemm_tb.drive_gemm`, and the results go to the file the job names.  Checking
happens on the pytest side (tests/cocotb/test_cocotb_gemm_engine.py) against numpy and the
cycle model.
"""

import os

import cocotb

from sim.bench.gemm_tb import run_job

__all__ = ["gemm_job"]


@cocotb.test()
async def gemm_job(dut):
    """Run every GEMM of the job on the engine and record C and the cycles."""
    await run_job(dut, os.environ["OMNICONV_TB_JOB"])
