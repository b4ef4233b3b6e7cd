// A page served from another origin signs in with amazon-cognito-identity-js (its browser
// bundle, SRP) in headless Chromium against the daemon: the API answers cross-origin
// requests (CORS) and the browser's own crypto drives the SRP exchange.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import {
  AdminCreateUserCommand,
  AdminSetUserPasswordCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { startDaemon, PASSWORD } from './lib/daemon.mjs';

const require = createRequire(import.meta.url);
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const bundle = readFileSync(
  require.resolve('amazon-cognito-identity-js/dist/amazon-cognito-identity.min.js'),
);

let d;
let site;
let siteUrl;
before(async () => {
  d = await startDaemon();
  site = createServer((req, res) => {
    if (req.url === '/cognito.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(bundle);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>app</title><script src="/cognito.js"></script>');
    }
  });
  await new Promise((ok) => site.listen(0, '127.0.0.1', ok));
  siteUrl = `http://127.0.0.1:${site.address().port}/`;
});
after(async () => {
  site?.close();
  await d?.stop();
});

test('headless Chromium signs in with SRP from another origin', { skip: !existsSync(browserPath) && `no browser at ${browserPath}` }, async () => {
  const { poolId, clientId } = await d.poolAndClient();
  await d.admin.send(new AdminCreateUserCommand({ UserPoolId: poolId, Username: 'erin', MessageAction: 'SUPPRESS' }));
  await d.admin.send(
    new AdminSetUserPasswordCommand({ UserPoolId: poolId, Username: 'erin', Password: PASSWORD, Permanent: true }),
  );
  // playwright gives the browser a fresh temporary profile of its own.
  const browser = await chromium.launch({
    executablePath: browserPath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage();
    await page.goto(siteUrl);
    assert.notEqual(new URL(siteUrl).origin, new URL(d.endpoint).origin);
    const result = await page.evaluate(
      ({ poolId, clientId, endpoint, password }) =>
        new Promise((ok) => {
          const C = window.AmazonCognitoIdentity;
          const pool = new C.CognitoUserPool({ UserPoolId: poolId, ClientId: clientId, endpoint: endpoint + '/' });
          const user = new C.CognitoUser({ Username: 'erin', Pool: pool });
          user.authenticateUser(new C.AuthenticationDetails({ Username: 'erin', Password: password }), {
            onSuccess: (s) => ok({ username: s.getIdToken().decodePayload()['cognito:username'], origin: location.origin }),
            onFailure: (e) => ok({ error: `${e.code}: ${e.message}` }),
          });
        }),
      { poolId, clientId, endpoint: d.endpoint, password: PASSWORD },
    );
    assert.equal(result.error, undefined);
    assert.equal(result.username, 'erin');
  } finally {
    await browser.close();
  }
});
