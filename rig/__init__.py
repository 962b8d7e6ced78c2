"""tinyrig: hardware-in-the-loop test rig for sparse on-device training on Cortex-M."""

import os as _os

__version__ = "0.1.0"

# labgrid talks gRPC. With gRPC's fork support on (grpcio's core default), a process that has
# a live gRPC channel runs gRPC's fork handlers in every child it forks — also in a child
# that is about to exec QEMU, gdb or the native firmware — and that child can abort
# (SIGABRT, "epoll_wait error: Bad file descriptor") before exec. The rig never uses gRPC in
# a forked child, so it turns the handlers off before anything imports grpc; a value the user
# set wins. (tests/test_grpc_fork.py)
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
