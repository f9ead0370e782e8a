"""The `egoallo` command. Before anything imports torch: OpenMP threads sleep while they wait, and LAPACK
(scipy's OpenBLAS) runs on the calling thread (`egoallo.threads`)."""

from ..threads import prefer_passive_waiting

prefer_passive_waiting()
