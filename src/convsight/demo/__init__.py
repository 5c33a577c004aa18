"""The offline demo report (``convsight demo``)."""

from convsight.demo.run import prepare_out, run_demo

__all__ = ["prepare_out", "run_demo"]
