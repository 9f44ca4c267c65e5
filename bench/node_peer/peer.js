#!/usr/bin/env node
// The Node.js peer of the sqs_ingest benchmark (issue 17): sqs-consumer +
// pg, no ledger, as such a consumer is usually written.
//
// K pollers (--pollers, default 32: K receives in flight, as the other
// contenders), each an sqs-consumer Consumer with batchSize 10 whose
// handleMessageBatch stores the batch's login events in ONE multi-row INSERT
// through a shared pg Pool (autocommit: one transaction per batch), then
// returns the batch, which sqs-consumer deletes with DeleteMessageBatch.
// Nothing records which messages were stored: a redelivered message is
// stored again (no ledger, no exactly-once).
//
// Maps and masks as bench/seed_etl.py does (HMAC-SHA256 hex of ip and
// device_id with BENCH_MASK_KEY; app_version "M.m[.p]" -> M*1000000 + m*1000
// + p; create_date = UTC date of SentTimestamp), so its rows equal the
// extension's and the seed design's. A message that does not map is counted
// as rejected and deleted.
//
// Exits when --expect messages are stored (or rejected) and deleted,
// printing one JSON line with the seed design's fields; seconds runs from
// the first receive to the last delete, cpu_s is this process's CPU (all of
// its threads), backend_cpu_s that of the pool's backends since they
// connected (same machine only). Any receive, store or delete error ends it with status 1.
//
//   node peer.js --queue-url URL [--endpoint URL] [--dsn DSN] --expect N
//                [--pollers K] [--pool P] [--wait S] [--max-seconds S]
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const { parseArgs } = require('node:util');
// the pinned SDK runs on Debian 12's Node 20; its notice about later
// versions needing Node 22 would only clutter the bench's log
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { SQSClient } = require('@aws-sdk/client-sqs');
const { Consumer } = require('sqs-consumer');
const pg = require('pg');

const COLUMNS = ['user_id', 'device_type', 'masked_ip', 'masked_device_id',
	'locale', 'app_version', 'create_date'];

function fail(msg) {
	process.stderr.write(`node_peer: ${msg}\n`);
	process.exit(1);
}

function intOption(opts, name, dflt) {
	if (opts[name] === undefined)
		return dflt;
	const v = Number(opts[name]);
	if (!Number.isInteger(v) || v < 1)
		fail(`--${name} must be a positive integer`);
	return v;
}

// libpq "key=value ..." (what the bench passes) or a postgres:// URI
function pgConfig(dsn) {
	if (/^postgres(ql)?:\/\//.test(dsn))
		return { connectionString: dsn };
	const names = { host: 'host', port: 'port', user: 'user', dbname: 'database', password: 'password' };
	const cfg = {};
	for (const kv of dsn.trim().split(/\s+/)) {
		const i = kv.indexOf('=');
		if (i < 1 || !(kv.slice(0, i) in names))
			fail(`--dsn: cannot use "${kv.slice(0, i > 0 ? i : kv.length)}"`);
		cfg[names[kv.slice(0, i)]] = kv.slice(i + 1);
	}
	return cfg;
}

function mask(key, value) {
	if (value === undefined || value === null)
		return null;
	return crypto.createHmac('sha256', key).update(String(value)).digest('hex');
}

function versionInt(v) {
	const parts = String(v).split('.');
	if ((parts.length !== 2 && parts.length !== 3) || !parts.every((p) => /^[0-9]{1,3}$/.test(p)))
		throw new Error(`bad app_version ${JSON.stringify(v)}`);
	const n = parts.map((p) => parseInt(p, 10)).concat([0]);
	return n[0] * 1000000 + n[1] * 1000 + n[2];
}

// one SQS message -> one user_logins row; throws if it does not map
function toRow(key, msg) {
	let body;
	try {
		body = JSON.parse(msg.Body);
	} catch (e) {
		throw new Error(`body is not JSON: ${e.message}`);
	}
	if (body === null || typeof body !== 'object' || Array.isArray(body) || !('user_id' in body))
		throw new Error('not a login event');
	let created = body.create_date;
	if (!created) {
		const sent = Number((msg.Attributes || {}).SentTimestamp ?? Date.now());
		created = new Date(sent).toISOString().slice(0, 10);
	}
	return [body.user_id ?? null, body.device_type ?? null, mask(key, body.ip), mask(key, body.device_id),
		body.locale ?? null, versionInt(body.app_version), created];
}

function procStat(pid) {
	try {
		const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop().trim().split(/\s+/);
		return (Number(f[11]) + Number(f[12])) / 100;	/* USER_HZ is 100 on Linux */
	} catch (e) {
		return null;
	}
}

function procHwmKb(pid) {
	try {
		const m = /^VmHWM:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
		return m ? Number(m[1]) : null;
	} catch (e) {
		return null;
	}
}

async function main() {
	const { values: opts } = parseArgs({
		options: {
			'queue-url': { type: 'string' },
			endpoint: { type: 'string' },
			dsn: { type: 'string', default: process.env.BENCH_DSN || 'dbname=postgres' },
			table: { type: 'string', default: 'public.user_logins' },
			'mask-key': { type: 'string', default: process.env.BENCH_MASK_KEY || 'bench-mask-key' },
			expect: { type: 'string' },
			pollers: { type: 'string' },
			pool: { type: 'string' },
			wait: { type: 'string' },
			'max-seconds': { type: 'string' },
		},
	});
	const queueUrl = opts['queue-url'];
	if (!queueUrl)
		fail('--queue-url is required');
	const expect = intOption(opts, 'expect', undefined);
	if (expect === undefined)
		fail('--expect is required');
	const pollers = intOption(opts, 'pollers', 32);
	const poolSize = intOption(opts, 'pool', 10);	/* pg's default */
	const wait = intOption(opts, 'wait', 1);
	const maxSeconds = intOption(opts, 'max-seconds', 1800);
	const endpoint = opts.endpoint || new URL(queueUrl).origin;
	const key = Buffer.from(opts['mask-key']);
	const insertHead = `INSERT INTO ${opts.table} (${COLUMNS.join(',')}) VALUES `;

	const pool = new pg.Pool({ ...pgConfig(opts.dsn), max: poolSize });
	const backends = new Set();
	pool.on('connect', (client) => backends.add(client.processID));
	pool.on('error', (err) => fail(`database: ${err.message}`));
	await pool.query('SELECT 1');	/* fail early if the database is not there */

	const sqs = new SQSClient({
		endpoint,
		region: 'us-east-1',
		credentials: {
			accessKeyId: process.env.SQS_TEST_ACCESS_KEY_ID || 'AKIDSQSINGESTTEST',
			secretAccessKey: process.env.SQS_TEST_SECRET_ACCESS_KEY || 'sqs-ingest-test-secret',
		},
		maxAttempts: 3,
		requestHandler: { httpAgent: { keepAlive: true, maxSockets: pollers } },
	});

	let received = 0, inserted = 0, rejected = 0, deleted = 0, receives = 0;
	const cpu0 = process.cpuUsage();
	const tStart = process.hrtime.bigint();
	let tDone = tStart;
	let done = false;

	async function handleMessageBatch(messages) {
		received += messages.length;
		const params = [];
		const tuples = [];
		for (const m of messages) {
			let row;
			try {
				row = toRow(key, m);
			} catch (e) {
				rejected++;
				process.stderr.write(`node_peer: rejected ${m.MessageId}: ${e.message}\n`);
				continue;
			}
			const base = params.length;
			tuples.push(`(${row.map((_, i) => `$${base + i + 1}`).join(',')})`);
			params.push(...row);
		}
		if (tuples.length > 0) {
			await pool.query(insertHead + tuples.join(','), params);
			inserted += tuples.length;
		}
		return messages;	/* all of them: sqs-consumer deletes them in one batch */
	}

	const consumers = [];
	const finished = new Promise((resolve) => {
		for (let i = 0; i < pollers; i++) {
			const c = Consumer.create({
				queueUrl,
				sqs,
				batchSize: 10,
				waitTimeSeconds: wait,
				messageSystemAttributeNames: ['SentTimestamp'],
				handleMessageBatch,
			});
			c.on('response_processed', () => receives++);
			c.on('empty', () => receives++);
			c.on('message_processed', () => {
				deleted++;
				if (deleted >= expect && !done) {
					done = true;
					tDone = process.hrtime.bigint();
					resolve();
				}
			});
			for (const ev of ['error', 'processing_error', 'timeout_error'])
				c.on(ev, (err) => fail(`${ev}: ${err.message}`));
			consumers.push(c);
		}
		consumers.forEach((c) => c.start());
	});
	const timer = setTimeout(() => fail(`gave up after ${maxSeconds} s (deleted ${deleted})`), maxSeconds * 1000);
	await finished;
	clearTimeout(timer);
	consumers.forEach((c) => c.stop());

	const cpu = process.cpuUsage(cpu0);
	let backendCpu = 0, backendHwm = 0;
	for (const pid of backends) {
		const c = procStat(pid), h = procHwmKb(pid);
		backendCpu = c === null || backendCpu === null ? null : backendCpu + c;
		backendHwm = h === null || backendHwm === null ? null : Math.max(backendHwm, h);
	}
	const seconds = Number(tDone - tStart) / 1e9;
	process.stdout.write(JSON.stringify({
		peer: 'node', pollers, pool: poolSize, received, inserted, rejected, deleted, receives,
		seconds: Number(seconds.toFixed(3)),
		msgs_per_s: Number((seconds > 0 ? deleted / seconds : 0).toFixed(1)),
		cpu_s: Number(((cpu.user + cpu.system) / 1e6).toFixed(3)),
		maxrss_kb: process.resourceUsage().maxRSS,
		backend_cpu_s: backendCpu === null ? null : Number(backendCpu.toFixed(3)),
		backend_hwm_kb: backendHwm,
		backends: backends.size,
	}) + '\n');
	process.exit(0);
}

main().catch((e) => fail(e.stack || e.message));
