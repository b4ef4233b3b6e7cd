// Starts a cognate daemon for one test file: its own data directory, admin credentials
// and master key, cheap argon2, and a reader of its stdout that collects the
// `cognate-message {json}` lines (codes) and the `cognate listening on URL` line.
// The binary: $COGNATE_BIN, else target/debug/cognate of this checkout.

import { spawn } from 'node:child_process';
import { Agent } from 'node:https';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import {
  CognitoIdentityProviderClient,
  CreateUserPoolCommand,
  CreateUserPoolClientCommand,
} from '@aws-sdk/client-cognito-identity-provider';

const here = dirname(fileURLToPath(import.meta.url));
export const REGION = 'us-east-1';
export const PASSWORD = 'Corr3ct-Horse!';
export const OTHER_PASSWORD = 'Batt3ry-Staple?';

function binary() {
  const bin = process.env.COGNATE_BIN || resolve(here, '../../../target/debug/cognate');
  if (!existsSync(bin)) {
    throw new Error(`cognate binary not found at ${bin}: run cargo build --bin cognate or set COGNATE_BIN`);
  }
  return bin;
}

/**
 * `args`: more daemon flags (e.g. `--tls-cert`); `ca`: a PEM certificate the admin client
 * trusts (for a daemon serving https with a certificate the test made).
 */
export async function startDaemon({ args = [], ca } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'cognate-node-'));
  const accessKeyId = 'AKIA' + randomBytes(8).toString('hex').toUpperCase();
  const secretAccessKey = randomBytes(20).toString('hex');
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('COGNATE_')));
  Object.assign(env, {
    COGNATE_ADMIN_ACCESS_KEY_ID: accessKeyId,
    COGNATE_ADMIN_SECRET_ACCESS_KEY: secretAccessKey,
    COGNATE_MASTER_KEY: randomBytes(32).toString('hex'),
    COGNATE_ARGON2_M_KIB: '64',
    COGNATE_ARGON2_T: '1',
    COGNATE_ARGON2_P: '1',
    RUST_LOG: 'warn',
    NO_COLOR: '1',
  });
  const child = spawn(binary(), ['serve', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data'), ...args], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const messages = [];
  const waiters = new Set();
  let endpoint;
  const listening = new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('daemon did not start within 30 s')), 30_000);
    child.once('exit', (code) => fail(new Error(`daemon exited early with ${code}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith('cognate listening on ')) {
        endpoint = line.slice('cognate listening on '.length).trim().replace(/\/$/, '');
        clearTimeout(timer);
        ok();
      } else if (line.startsWith('cognate-message ')) {
        messages.push({ json: JSON.parse(line.slice('cognate-message '.length)), used: false });
        for (const w of waiters) w();
      }
    });
  });
  await listening;
  const admin = new CognitoIdentityProviderClient({
    endpoint,
    region: REGION,
    credentials: { accessKeyId, secretAccessKey },
    ...(ca ? { requestHandler: { httpsAgent: new Agent({ ca }) } } : {}),
  });

  /** The code of the next unused message of `kind` for `username`. */
  async function waitCode(poolId, username, kind, timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = messages.find(
        (x) => !x.used && x.json.poolId === poolId && x.json.username === username && x.json.kind === kind,
      );
      if (m) {
        m.used = true;
        const code = /\b(\d{6})\b/.exec(m.json.body);
        if (!code) throw new Error(`no code in ${JSON.stringify(m.json)}`);
        return code[1];
      }
      if (Date.now() > deadline) throw new Error(`no ${kind} message for ${username}`);
      await new Promise((ok) => {
        waiters.add(ok);
        setTimeout(ok, 200);
      }).finally(() => waiters.clear());
    }
  }

  async function stop() {
    if (child.exitCode === null) {
      const exited = new Promise((ok) => child.once('exit', ok));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }

  /** A pool (email auto-verified) and an SRP-capable client without a secret. */
  async function poolAndClient(extraPool = {}, extraClient = {}) {
    const pool = await admin.send(
      new CreateUserPoolCommand({
        PoolName: `node-${randomBytes(4).toString('hex')}`,
        AutoVerifiedAttributes: ['email'],
        ...extraPool,
      }),
    );
    const poolId = pool.UserPool.Id;
    const client = await admin.send(
      new CreateUserPoolClientCommand({
        UserPoolId: poolId,
        ClientName: 'web',
        ExplicitAuthFlows: ['ALLOW_USER_SRP_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH', 'ALLOW_CUSTOM_AUTH'],
        EnableTokenRevocation: true,
        ...extraClient,
      }),
    );
    return { poolId, clientId: client.UserPoolClient.ClientId };
  }

  return { endpoint, admin, waitCode, stop, poolAndClient };
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) for a base32 secret, at time step `step`. */
export async function totp(secretBase32, step) {
  const { createHmac } = await import('node:crypto');
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secretBase32.replace(/=+$/, '').toUpperCase()) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const h = createHmac('sha1', key).update(counter).digest();
  const o = h[h.length - 1] & 0xf;
  const n = (h.readUInt32BE(o) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

/** The current TOTP step, after waiting for a fresh one when `after` is given. */
export async function nextStep(after) {
  for (;;) {
    const step = Math.floor(Date.now() / 30_000);
    if (after === undefined || step > after) return step;
    await new Promise((ok) => setTimeout(ok, 500));
  }
}

/** A Storage for amazon-cognito-identity-js that survives between CognitoUser objects. */
export class MemoryStorage {
  constructor() {
    this.data = new Map();
  }
  setItem(k, v) {
    this.data.set(k, String(v));
  }
  getItem(k) {
    return this.data.has(k) ? this.data.get(k) : null;
  }
  removeItem(k) {
    this.data.delete(k);
  }
  clear() {
    this.data.clear();
  }
}
