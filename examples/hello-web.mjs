// A tiny web server for the demo: answers with who it is and who it saw.
import { createServer } from 'node:http';
import { hostname } from 'node:os';

const port = Number(process.argv[2] ?? 80);
createServer((req, res) => {
  const peer = `${req.socket.remoteAddress?.replace(/^::ffff:/, '')}:${req.socket.remotePort}`;
  res.end(`hello from ${hostname()}: you are ${peer}\n`);
}).listen(port, () => console.log(`listening on ${port}`));
