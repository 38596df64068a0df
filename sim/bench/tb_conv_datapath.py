"""cocotb side of the conv datapath tests (launched by sim.bench.conv_tb.rtl_conv_batch).

The job (``OMNICONV_CONV_JOB``) lists layers, each as datapath invocations with their buffer
images and settings; :func:`sim.bench.conv_tb.run_job` runs them and writes the results.
Checking happens on the pytest side against exact convolution and the cycle model.
"""

import os

import cocotb

from sim.bench.conv_tb import run_job

__all__ = ["conv_job"]


@cocotb.test()
async def conv_job(dut):
    """Run every invocation of the job on the datapath and record outputs and cycles."""
    await run_job(dut, os.environ["OMNICONV_CONV_JOB"])
