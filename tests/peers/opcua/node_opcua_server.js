// A node-opcua server for fieldwatch's peer tests (tests/peers/opcua).
//
// Configured by environment variables, all optional:
//   PORT        TCP port on 127.0.0.1 (required)
//   PKI         the PKI folder (node-opcua layout: own/, trusted/certs, rejected/, issuers/)
//   SECURITY    comma-separated list of None, Sign, SignAndEncrypt (Basic256Sha256 for the last two)
//   ACCEPT      "1": automaticallyAcceptUnknownCertificate (the default), "0": refuse unknown certificates
//   USER_NAME, USER_PASSWORD   when set, the only accepted user (and anonymous access is refused)
// Prints "READY <endpoint url> <node-opcua version>" once serving. Variables in namespace 1:
//   ns=1;s=Tank1.Level (Double, changes every read), ns=1;s=Counter (UInt32, +1 a second),
//   ns=1;s=Steady (Double, constant 7.0: never changes).
"use strict";
const path = require("path");
const modules = process.env.NODE_OPCUA_MODULES;
const req = (name) => require(modules ? path.join(modules, name) : name);
const opcua = req("node-opcua");
const version = req("node-opcua/package.json").version;

const port = parseInt(process.env.PORT || "0", 10);
const pki = process.env.PKI;
const accept = (process.env.ACCEPT || "1") === "1";
const modes = (process.env.SECURITY || "None").split(",").map((m) => m.trim()).filter(Boolean);
const user = process.env.USER_NAME;
const password = process.env.USER_PASSWORD;

async function main() {
    const certificateManager = new opcua.OPCUACertificateManager({
        rootFolder: pki,
        automaticallyAcceptUnknownCertificate: accept,
    });
    await certificateManager.initialize();
    const securityModes = modes.map((m) => opcua.MessageSecurityMode[m]);
    // Basic256Sha256 always: on a None endpoint it encrypts the user's password (without it
    // node-opcua offers no user name login there at all).
    const securityPolicies = [opcua.SecurityPolicy.Basic256Sha256];
    if (modes.includes("None")) securityPolicies.unshift(opcua.SecurityPolicy.None);
    const options = {
        port,
        host: "127.0.0.1",
        hostname: "127.0.0.1",
        resourcePath: "/UA/fieldwatch-peer",
        securityModes,
        securityPolicies,
        serverCertificateManager: certificateManager,
        buildInfo: { productName: "fieldwatch-peer-node-opcua", softwareVersion: version },
        allowAnonymous: !user,
    };
    if (user) {
        options.userManager = { isValidUser: (name, pass) => name === user && pass === password };
    }
    const server = new opcua.OPCUAServer(options);
    await server.initialize();
    const addressSpace = server.engine.addressSpace;
    const ns = addressSpace.getOwnNamespace();
    const plant = ns.addObject({ organizedBy: addressSpace.rootFolder.objects, browseName: "Plant" });
    let level = 5.0;
    ns.addVariable({
        componentOf: plant, nodeId: "s=Tank1.Level", browseName: "Level", dataType: "Double", minimumSamplingInterval: 100,
        value: { get: () => { level = 5.0 + Math.sin(Date.now() / 1000); return new opcua.Variant({ dataType: opcua.DataType.Double, value: level }); } },
    });
    let counter = 0;
    setInterval(() => { counter += 1; }, 1000).unref();
    ns.addVariable({
        componentOf: plant, nodeId: "s=Counter", browseName: "Counter", dataType: "UInt32", minimumSamplingInterval: 100,
        value: { get: () => new opcua.Variant({ dataType: opcua.DataType.UInt32, value: counter }) },
    });
    const steady = ns.addVariable({
        componentOf: plant, nodeId: "s=Steady", browseName: "Steady", dataType: "Double",
    });
    steady.setValueFromSource(new opcua.Variant({ dataType: opcua.DataType.Double, value: 7.0 }));
    await server.start();
    console.log(`READY opc.tcp://127.0.0.1:${port}/UA/fieldwatch-peer ${version}`);
    const stop = async () => { await server.shutdown(0); process.exit(0); };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

main().catch((err) => { console.error("FAILED", err); process.exit(1); });
