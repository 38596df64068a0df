"""The explorer's cost model in matrix form (layers × choices × hardware points).

Entry points: :func:`dse.cost.model.evaluate` and :func:`dse.cost.model.evaluate_one`; the
axes are :class:`dse.cost.workload.LayerTable`, :class:`dse.cost.choices.ChoiceTable`
(:func:`dse.cost.choices.enumerate_choices`) and :class:`dse.cost.hardware.HardwareTable`;
:func:`dse.cost.resources.estimate_resources` sizes overlay points.  The formulas are derived
in docs/cost-model.md.
"""

from dse.cost.choices import Choice, ChoiceTable, enumerate_choices, hardware_mask, legal_mask
from dse.cost.hardware import HardwareTable
from dse.cost.model import CostArrays, CostReport, evaluate, evaluate_aux, evaluate_one
from dse.cost.resources import Resources, estimate_resources
from dse.cost.workload import AuxTable, LayerTable

__all__ = ["Choice", "ChoiceTable", "enumerate_choices", "hardware_mask", "legal_mask",
           "HardwareTable", "CostArrays", "CostReport", "evaluate", "evaluate_aux",
           "evaluate_one", "Resources", "estimate_resources", "AuxTable", "LayerTable"]
