// agent.js - GETs through node's keep-alive agent, for test_pools.c.
//
//   node agent.js URL [COUNT [GAP_MS]]
//
// One http.Agent({keepAlive: true, maxSockets: 1}) for all COUNT GETs
// (default 1), GAP_MS (default 0) between the end of one and the start of
// the next: the agent keeps the socket in its free pool (registered in
// libuv's epoll set, unreferenced) meanwhile.  No timeout of node's own.
// One line per GET:
//
//   STATUS <code> bytes=<body length> reused=<0|1> ms=<elapsed>
//   ERROR <err.code> <err.message> ms=<elapsed>
//
// then "DONE"; exit 0 either way.
'use strict';
const http = require('http');

const url = process.argv[2];
const count = Number(process.argv[3] || 1);
const gap = Number(process.argv[4] || 0);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function once() {
	return new Promise((resolve) => {
		const t0 = process.hrtime.bigint();
		const ms = () => Number((process.hrtime.bigint() - t0) / 1000000n);
		let done = false;
		const fail = (err) => {
			if (done)
				return;
			done = true;
			console.log(`ERROR ${err.code} ${err.message} ms=${ms()}`);
			resolve();
		};
		const req = http.get(url, { agent }, (res) => {
			let n = 0;
			res.on('data', (b) => { n += b.length; });
			res.on('error', fail);
			res.on('aborted', () => fail(Object.assign(
				new Error('response aborted'), { code: 'ABORTED' })));
			res.on('end', () => {
				if (done)
					return;
				done = true;
				console.log(`STATUS ${res.statusCode} bytes=${n} ` +
					    `reused=${req.reusedSocket ? 1 : 0} ms=${ms()}`);
				resolve();
			});
		});
		req.on('error', fail);
	});
}

(async () => {
	for (let i = 0; i < count; i++) {
		if (i > 0)
			await new Promise((r) => setTimeout(r, gap));
		await once();
	}
	console.log('DONE');
	agent.destroy();
})();
