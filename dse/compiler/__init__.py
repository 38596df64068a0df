"""The compiler: from the explorer's per-layer choices to what the overlay runs.

* :mod:`dse.compiler.plan` -- one conv layer planned on the conv datapath: its invocations
  (the cut into channel chunks, filter chunks and row bands of :mod:`dse.lowering.split`),
  their settings (``Invocation.registers``), buffer images and cycles (the same lowering
  functions the explorer's cost model evaluates).  Its public names are re-exported here.
* :mod:`dse.compiler.program` -- chains of planned layers (and pools, residual adds) as a
  program for the overlay top and its DRAM image (HWC tensors, weights, register images).
* :mod:`dse.compiler.network` -- a network and the explorer's design as such a chain.
* :mod:`dse.compiler.asm` -- the assembler, disassembler and token checker of the
  instruction set (``rtl/isa.py``), and the timeline model of the engines.
* :mod:`dse.compiler.sparse_schedule` -- pruned spectral kernels, their bank placement and
  the conflict-free read schedule of the sparse spectral unit.
"""

from dse.compiler.plan import (WINO_G_DENOM, WINO_G_SCALED, Band, ConvPlan, Invocation,
                               default_requant, fft_kernel_spectra, fft_mac_shift_bound,
                               plan_conv, required_limits, winograd_pieces, winograd_weights)

__all__ = ["WINO_G_SCALED", "WINO_G_DENOM", "winograd_weights", "winograd_pieces",
           "fft_kernel_spectra", "fft_mac_shift_bound", "Invocation", "Band", "ConvPlan",
           "plan_conv", "required_limits", "default_requant"]
