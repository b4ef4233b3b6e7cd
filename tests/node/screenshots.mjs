// Screenshots of every hosted page, default and branded, into docs/hosted-pages/.
// Run by hand (not part of the test suite): `node screenshots.mjs` in tests/node after
// `cargo build -p cognate`; the daemon binary is $COGNATE_BIN or target/debug/cognate.
// Chromium: $CHROMIUM or /usr/bin/chromium.

import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHmac } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import {
  AdminCreateUserCommand,
  AdminSetUserPasswordCommand,
  AdminSetUserMFAPreferenceCommand,
  CreateManagedLoginBrandingCommand,
  CreateUserPoolClientCommand,
  CreateUserPoolCommand,
  CreateUserPoolDomainCommand,
  SetUICustomizationCommand,
  SetUserPoolMfaConfigCommand,
  UpdateUserPoolDomainCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { startDaemon, PASSWORD } from './lib/daemon.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(here, '../../docs/hosted-pages');
const CALLBACK = 'http://localhost:3000/callback';
mkdirSync(out, { recursive: true });

/** A PNG (RGB, no filter) drawn by `px(x, y) -> [r, g, b]`. */
function png(w, h, px) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + w * 3);
    for (let x = 0; x < w; x++) row.set(px(x, y), 1 + x * 3);
    rows.push(row);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// A 160×48 logo: an orange bar with a dark circle.
const LOGO = png(160, 48, (x, y) => {
  const inCircle = (x - 24) ** 2 + (y - 24) ** 2 < 18 ** 2;
  return inCircle ? [40, 40, 60] : x > 48 && y > 16 && y < 32 ? [255, 102, 0] : [255, 255, 255];
});
// A soft vertical gradient for the managed login page background.
const BACKGROUND = png(8, 256, (_, y) => [230 - (y >> 3), 240 - (y >> 4), 255]);

const CLASSIC_CSS = `
.background-customizable { background-color: #fdf3e7; }
.banner-customizable { padding: 4px 0; }
.label-customizable { color: #5a3200; }
.inputField-customizable { border-color: #c46a00; }
.inputField-customizable:focus { border-color: #ff6600; }
.submitButton-customizable { background-color: #ff6600; border-color: #ff6600; color: #1a1a1a; }
.submitButton-customizable:hover { background-color: #e65c00; }
.redirect-customizable { color: #a14a00; }
.errorMessage-customizable { background-color: #fff0f0; }
.textDescription-customizable { color: #6b4a2a; }
`;

const MANAGED_SETTINGS = {
  components: {
    pageBackground: { lightMode: { color: 'eef2ffff' } },
    form: { borderRadius: 16.0, lightMode: { backgroundColor: 'ffffffee', borderColor: '6366f1ff' } },
    primaryButton: {
      lightMode: {
        defaults: { backgroundColor: '4f46e5ff', textColor: 'ffffffff' },
        hover: { backgroundColor: '3730a3ff', textColor: 'ffffffff' },
      },
    },
    pageText: { lightMode: { headingColor: '312e81ff', descriptionColor: '4b5563ff' } },
  },
  componentClasses: {
    buttons: { borderRadius: 20.0 },
    input: { borderRadius: 10.0, lightMode: { defaults: { borderColor: 'a5b4fcff' } } },
    link: { lightMode: { defaults: { textColor: '4338caff' }, hover: { textColor: '312e81ff' } } },
  },
};

function totp(secretBase32, step = Math.floor(Date.now() / 30000)) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of secretBase32.replace(/=+$/, '')) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = createHmac('sha1', key).update(msg).digest();
  const o = h[19] & 15;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

const d = await startDaemon();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});

/** A pool with a domain, MFA as given, and an OAuth client named `appName`. */
async function site(domain, mfa, appName) {
  const pool = await d.admin.send(
    new CreateUserPoolCommand({
      PoolName: domain,
      AutoVerifiedAttributes: ['email'],
      Schema: [{ Name: 'email', AttributeDataType: 'String', Required: true, Mutable: true }],
    }),
  );
  const poolId = pool.UserPool.Id;
  await d.admin.send(new SetUserPoolMfaConfigCommand({ UserPoolId: poolId, ...mfa }));
  await d.admin.send(new CreateUserPoolDomainCommand({ UserPoolId: poolId, Domain: domain }));
  const client = await d.admin.send(
    new CreateUserPoolClientCommand({
      UserPoolId: poolId,
      ClientName: appName,
      AllowedOAuthFlowsUserPoolClient: true,
      AllowedOAuthFlows: ['code'],
      AllowedOAuthScopes: ['openid', 'email'],
      CallbackURLs: [CALLBACK],
      LogoutURLs: ['http://localhost:3000/signed-out'],
      SupportedIdentityProviders: ['COGNITO'],
    }),
  );
  const clientId = client.UserPoolClient.ClientId;
  const base = `${d.endpoint}/domains/${domain}`;
  const authorize = `${base}/oauth2/authorize?response_type=code&client_id=${clientId}&redirect_uri=${encodeURIComponent(CALLBACK)}&scope=openid`;
  return { poolId, clientId, base, authorize, domain };
}

async function user(s, name, attrs = []) {
  await d.admin.send(
    new AdminCreateUserCommand({
      UserPoolId: s.poolId,
      Username: name,
      MessageAction: 'SUPPRESS',
      UserAttributes: [
        { Name: 'email', Value: `${name}@example.com` },
        { Name: 'email_verified', Value: 'true' },
        ...attrs,
      ],
    }),
  );
  await d.admin.send(
    new AdminSetUserPasswordCommand({ UserPoolId: s.poolId, Username: name, Password: PASSWORD, Permanent: true }),
  );
}

async function shot(page, name) {
  await page.waitForLoadState('load');
  const file = `${out}/${name}.png`;
  await page.screenshot({ path: file });
  console.log('wrote', file);
}

async function newPage() {
  const ctx = await browser.newContext({ viewport: { width: 480, height: 720 } });
  const page = await ctx.newPage();
  await page.route('http://localhost:3000/**', (r) => r.fulfill({ body: 'back at the app' }));
  return page;
}

async function signIn(page, s, name) {
  await page.goto(s.authorize);
  await page.fill('#username', name);
  await page.fill('#password', PASSWORD);
  await page.click('#login-form button[type=submit]');
  await page.waitForLoadState('load');
}

/** Every page of `s` (and TOTP setup and the code page on `t`), suffixed `variant`. */
async function capture(s, t, variant, n) {
  let page = await newPage();
  await page.goto(s.authorize);
  await shot(page, `sign-in-${variant}`);
  // A wrong password shows the error message.
  await page.fill('#username', 'nobody');
  await page.fill('#password', 'wrong-password');
  await page.click('#login-form button[type=submit]');
  await shot(page, `sign-in-error-${variant}`);

  await page.click('#signup-link');
  await shot(page, `sign-up-${variant}`);
  await page.fill('#username', `new${n}`);
  await page.fill('input[name="attr.email"]', `new${n}@example.com`);
  await page.fill('#password', PASSWORD);
  await page.fill('#confirm_password', PASSWORD);
  await page.click('#signup-form button[type=submit]');
  await shot(page, `confirm-${variant}`);

  await page.goto(s.authorize);
  await page.click('#forgot-link');
  await shot(page, `forgot-password-${variant}`);
  await user(s, `reset${n}`);
  await page.fill('#username', `reset${n}`);
  await page.click('#forgot-form button[type=submit]');
  await shot(page, `reset-password-${variant}`);

  // A temporary password: the new password page.
  await d.admin.send(
    new AdminCreateUserCommand({
      UserPoolId: s.poolId,
      Username: `temp${n}`,
      TemporaryPassword: 'Temp0rary-Pass!',
      MessageAction: 'SUPPRESS',
      UserAttributes: [{ Name: 'email', Value: `temp${n}@example.com` }, { Name: 'email_verified', Value: 'true' }],
    }),
  );
  page = await newPage();
  await page.goto(s.authorize);
  await page.fill('#username', `temp${n}`);
  await page.fill('#password', 'Temp0rary-Pass!');
  await page.click('#login-form button[type=submit]');
  await shot(page, `new-password-${variant}`);

  // Two factors without a preference: choose one.
  await user(s, `sel${n}`, [{ Name: 'phone_number', Value: '+15555550177' }]);
  await d.admin.send(
    new AdminSetUserMFAPreferenceCommand({
      UserPoolId: s.poolId,
      Username: `sel${n}`,
      SMSMfaSettings: { Enabled: true, PreferredMfa: false },
      EmailMfaSettings: { Enabled: true, PreferredMfa: false },
    }),
  );
  page = await newPage();
  await signIn(page, s, `sel${n}`);
  await shot(page, `mfa-select-${variant}`);

  // TOTP required: set it up, then the code page on the next sign-in.
  page = await newPage();
  await user(t, `otp${n}`);
  await signIn(page, t, `otp${n}`);
  await shot(page, `totp-setup-${variant}`);
  const secret = (await page.textContent('#secret')).trim();
  await page.fill('#code', totp(secret));
  await page.click('#mfa-setup-form button[type=submit]');
  await page.waitForLoadState('load');
  page = await newPage();
  await signIn(page, t, `otp${n}`);
  await shot(page, `mfa-code-${variant}`);

  // Signed out, and a link that does not work: the message page.
  page = await newPage();
  await page.goto(`${s.base}/logout?client_id=${s.clientId}&logout_uri=${encodeURIComponent('https://unregistered.example/')}`);
  await shot(page, `message-${variant}`);
}

try {
  const sms = {
    SmsAuthenticationMessage: 'Your sign-in code is {####}',
    SmsConfiguration: { SnsCallerArn: 'arn:aws:iam::123456789012:role/cognate-sms', ExternalId: 'cognate' },
  };
  const s = await site(
    'shots',
    {
      MfaConfiguration: 'OPTIONAL',
      SmsMfaConfiguration: sms,
      EmailMfaConfiguration: { Message: 'Your sign-in code is {####}', Subject: 'Sign-in code' },
      SoftwareTokenMfaConfiguration: { Enabled: true },
    },
    'Acme Shop',
  );
  const t = await site(
    'shots-totp',
    { MfaConfiguration: 'ON', SoftwareTokenMfaConfiguration: { Enabled: true } },
    'Acme Shop',
  );
  await capture(s, t, 'default', 1);

  // Classic hosted UI branding for both pools (ClientId ALL), then every page again.
  for (const p of [s, t]) {
    await d.admin.send(
      new SetUICustomizationCommand({ UserPoolId: p.poolId, ClientId: 'ALL', CSS: CLASSIC_CSS, ImageFile: LOGO }),
    );
  }
  await capture(s, t, 'branded', 2);

  // Managed login (version 2) with a generated style: the sign-in page.
  await d.admin.send(new UpdateUserPoolDomainCommand({ UserPoolId: s.poolId, Domain: s.domain, ManagedLoginVersion: 2 }));
  await d.admin.send(
    new CreateManagedLoginBrandingCommand({
      UserPoolId: s.poolId,
      ClientId: s.clientId,
      Settings: MANAGED_SETTINGS,
      Assets: [
        { Category: 'FORM_LOGO', ColorMode: 'LIGHT', Extension: 'PNG', Bytes: LOGO },
        { Category: 'PAGE_BACKGROUND', ColorMode: 'LIGHT', Extension: 'PNG', Bytes: BACKGROUND },
      ],
    }),
  );
  const page = await newPage();
  await page.goto(s.authorize);
  await shot(page, 'sign-in-managed-login');
  await page.click('#signup-link');
  await shot(page, 'sign-up-managed-login');
} finally {
  await browser.close();
  await d.stop();
}
