"""The `egoallo` command. OpenMP and OpenBLAS threads sleep while they wait (set before torch is imported)."""

from ..threads import prefer_passive_waiting

prefer_passive_waiting()
