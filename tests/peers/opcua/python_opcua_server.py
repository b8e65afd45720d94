"""A python-opcua (`opcua` 0.98) server for fieldwatch's peer tests: `python python_opcua_server.py PORT`.

Prints ``READY <endpoint url> <opcua version>`` once serving. Variables in
namespace 2: ``ns=2;s=Tank1.Level`` (Double, changes twice a second) and
``ns=2;s=Counter`` (Int64, +1 a second). Security: None only, anonymous.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import signal
import sys
import threading
import time

from opcua import Server, ua


def main() -> None:
    port = int(sys.argv[1])
    logging.basicConfig(level=logging.ERROR)
    server = Server()
    url = f"opc.tcp://127.0.0.1:{port}/freeopcua/server/"
    server.set_endpoint(url)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = server.register_namespace("urn:fieldwatch:peer-test")
    plant = server.get_objects_node().add_object(ua.NodeId("Plant", ns), "Plant")
    level = plant.add_variable(ua.NodeId("Tank1.Level", ns), "Level", 5.0, ua.VariantType.Double)
    counter = plant.add_variable(ua.NodeId("Counter", ns), "Counter", 0, ua.VariantType.Int64)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"READY {url} {importlib.metadata.version('opcua')}", flush=True)
    started = time.monotonic()
    try:
        while not stop.wait(0.5):
            elapsed = time.monotonic() - started
            level.set_value(5.0 + math.sin(elapsed))
            counter.set_value(int(elapsed))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
