"""The hand-computed NEq velocity case shared by the golden and the native firmware tests."""

import numpy as np

from rig.golden.f32 import F32

# Hand-computed first velocities (NEq's reference form: previous similarity 1, Δφ ≈ 0 for a
# stable neuron; cos(0, 0) = 1). One linear layer 2 → 4, b = 0, validation samples
# x = (1, 0) and (0, 1): neuron c's outputs over the subset are row c of W.
VEL_W0 = np.array([[1, 0], [1, 0], [0, 0], [0, 0]], F32)  # SELECT t = 0
VEL_W1 = np.array([[1, 0], [0, 1], [0, 0], [1, 0]], F32)  # SELECT t = 1 (and t = 2)
VEL_X = np.eye(2, dtype=F32)
#   c0 stable        φ¹ = 1  v¹ = (1 − 1) − μ·0 = 0      (φ⁰ = 0 gave 1)
#   c1 turned 90°    φ¹ = 0  v¹ = 0 − 1 = −1             (φ⁰ = 0 gave 0)
#   c2 silent        φ¹ = 1  v¹ = 0                      (cos(0,0) = 0 would give −1)
#   c3 woke up       φ¹ = 0  v¹ = −1                     (φ⁰ = 0 gave 0)
VEL_V1 = np.array([0.0, -1.0, 0.0, -1.0], F32)
#   t = 2, same W: φ² = 1 for all; v² = (1 − φ¹) − 0.5·v¹
VEL_V2 = np.array([0.0, 1.5, 0.0, 1.5], F32)
#   neq with ε = 0.25 trains iff |v| > ε
VEL_NEQ_ROWS1 = [False, True, False, True]
