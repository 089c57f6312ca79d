"""cocotb side of the co-simulation link (:mod:`fixar.sim.cosim`): connect to
the host's socket, then apply its writes, reads and program runs to the
training engine until it says quit (or goes away)."""
from __future__ import annotations

import os
import socket

import cocotb

from fixar.sim.cosim import recv, send
from fixar.sim.engine_tb import TB


@cocotb.test()
async def serve(dut):
    tb = TB(dut)
    await tb.reset()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.environ["FIXAR_COSIM_SOCKET"])
    served = 0
    try:
        while True:
            try:
                req = recv(sock)   # blocks the simulator: simulated time stands still while the host works
            except ConnectionError:
                dut._log.warning("host went away after %d requests", served)
                return
            op = req[0]
            if op == "quit":
                send(sock, None)
                break
            if op == "writes":
                await tb.apply(req[1])
                send(sock, None)
            elif op == "reads":
                send(sock, [await tb.read(r) for r in req[1]])
            elif op == "run":
                send(sock, await tb.run(req[1]))
            elif op == "prng_set":
                await tb.set_prng(req[1])
                send(sock, None)
            elif op == "pulse":          # a one-cycle strobe, e.g. rg_clear
                getattr(dut, req[1]).value = 1
                await tb.edge
                getattr(dut, req[1]).value = 0
                send(sock, None)
            elif op == "prng_get":
                send(sock, tb.prng_state())
            else:
                send(sock, RuntimeError(f"unknown co-simulation request {op!r}"))
            served += 1
    finally:
        sock.close()
    dut._log.info("co-simulation: %d requests served", served)
