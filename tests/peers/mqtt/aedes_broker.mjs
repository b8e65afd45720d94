// Start aedes 1.x on 127.0.0.1:PORT for the peer tests: node aedes_broker.mjs PORT /path/to/aedes/aedes.js
// aedes 1.x is an ES module whose default export only throws; the broker is made with
// `await Aedes.createBroker()` and served with `net.createServer(broker.handle)`.
import net from 'node:net'
import { pathToFileURL } from 'node:url'

const [port, aedesPath] = process.argv.slice(2)
const { Aedes } = await import(pathToFileURL(aedesPath).href)
const broker = await Aedes.createBroker()
const server = net.createServer(broker.handle)
server.listen(Number(port), '127.0.0.1', () => console.log(`aedes ${broker.version} listening on ${port}`))
const stop = () => server.close(() => broker.close(() => process.exit(0)))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
