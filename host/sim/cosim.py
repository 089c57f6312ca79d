"""Co-simulation link: the host process (the RL loop's `rtl` backend) drives
the training engine running under Verilator in a second process.

The simulator process runs the cocotb module :mod:`fixar.sim.cosim_server`,
which connects to a Unix socket the host listens on and then executes
requests until told to quit. A request is a pickled tuple, framed by an
8-byte length:

    ("writes", [Write, ...])  -> None        memory and register writes
    ("reads", [Read, ...])    -> [[row, ...], ...]
    ("run", pc)               -> cycles      start the program at pc, wait for done
    ("prng_set", seed) -> None; ("prng_get",) -> state
    ("pulse", port)           -> None        a one-cycle strobe (rg_clear)
    ("quit",)

The simulator only advances while a request needs it, so the engine's cycle
counts are the same as in the benches.

``python -m fixar.sim.cosim SOCKET CONFIG_JSON_FILE`` builds the engine (a
cached Verilator build per config) and starts the simulator; the backend
launches it that way, in its own session so that a Ctrl-C in the loop
(which then saves a checkpoint by reading the engine) does not kill it.
"""
from __future__ import annotations

import pickle
import socket
import struct
import sys
from pathlib import Path

_LEN = struct.Struct("<Q")


def send(sock: socket.socket, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LEN.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("co-simulation peer closed the connection")
        buf += chunk
    return bytes(buf)


def recv(sock: socket.socket):
    (n,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
    return pickle.loads(_recv_exact(sock, n))


def main(argv: list[str] | None = None) -> int:
    from fixar.config import FixarConfig
    from fixar.sim.rtl import generated, run_module

    sock_path, cfg_file = argv if argv is not None else sys.argv[1:]
    cfg = FixarConfig.from_json(Path(cfg_file).read_text())
    res = run_module("verilator", cfg, generated(cfg, array=True), "fixar_trainer", "fixar.sim.cosim_server",
                     tag=f"{cfg.digest}", env={"FIXAR_COSIM_SOCKET": sock_path})
    return 0 if res.passed else 1


if __name__ == "__main__":
    sys.exit(main())
