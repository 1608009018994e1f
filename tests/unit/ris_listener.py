"""A stand-in RIS MLLP listener, run as its own process by tests/unit/test_ris_hl7.py.

    python ris_listener.py RECEIVED_FILE ACK_CODE [ERROR_TEXT]

Listens on a free loopback port (printed as "PORT <n>" on stdout once listening) with
hl7's asyncio MLLP server; appends every received message, exactly as received, as one
JSON string per line to RECEIVED_FILE, then answers ACK_CODE (AA, AE, AR) with
ERROR_TEXT in MSA-3 and ERR-8, or never answers when ACK_CODE is "none".
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import hl7
from hl7.mllp import start_hl7_server


def _ack(message: hl7.Message, code: str, error_text: str) -> str:
    ack = str(message.create_ack(ack_code=code, message_id="ACK" + str(message.segment("MSH")[10])[:17]))
    if code != "AA":
        escaped = message.escape(error_text)
        ack = ack.rstrip("\r") + f"|{escaped}\rERR||||E||||{escaped}\r"
    return ack


async def _serve(received: Path, code: str, error_text: str) -> None:
    async def on_connection(reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        try:
            while True:
                block = await reader.readblock()
                text = block.decode("utf-8")
                with received.open("a") as out:
                    out.write(json.dumps(text) + "\n")
                if code != "none":
                    writer.writeblock(_ack(hl7.parse(text), code, error_text).encode("utf-8"))
                    await writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the client closed the connection
        finally:
            writer.close()

    server = await start_hl7_server(on_connection, "127.0.0.1", 0, encoding="utf-8")
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(Path(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""))
