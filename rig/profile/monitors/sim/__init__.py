"""Simulated power monitors for tests: each speaks its instrument's real wire protocol
(bytes over a pty, read by the adapter through pyserial) or, for the Joulescope, mimics the
official Python driver's API. Waveforms are known piecewise-constant profiles, so a test
can compare measured window energy with the analytic value."""

from rig.profile.monitors.sim.waveform import Segment, Waveform

__all__ = ["Segment", "Waveform"]
