// Drives the reference CDS Hooks sandbox (a static build served on loopback) in headless Chromium as
// a clinician would: patient-view, then rx-sign at two doses, accepting a suggestion and dismissing a
// card with an override reason. Every non-loopback request is blocked. Prints one JSON document: the
// service's exchanges as the browser saw them, the steps' outcomes and the requests it blocked.
//
//   node reference_sandbox.mjs CONFIG.json
//   CONFIG: {chromium, sandbox, fhir, service, screenshots, patientView, rxSign, overrideSystem,
//            normalDose: {product, pills, frequency}, absurdDose: {...}}
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const STEP_TIMEOUT_MS = 20000;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

const exchanges = [];
const blocked = new Set();
const consoleErrors = [];
const steps = {};

function isService(url) {
  return url.startsWith(config.service);
}

// The sandbox takes the hook from `hook` and the view from `screen`: both are needed for rx-sign.
function sandboxUrl(patient, screen, hook) {
  const query = new URLSearchParams({
    hook,
    fhirServiceUrl: config.fhir,
    patientId: patient,
    serviceDiscoveryURL: `${config.service}/cds-services`,
    screen,
  });
  return `${config.sandbox}/index.html?${query}`;
}

async function record(response) {
  const request = response.request();
  if (!isService(request.url()) || request.method() === 'OPTIONS') return;
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null; // a bare 401 has no body
  }
  exchanges.push({
    method: request.method(),
    jwtHeader: jwtHeader(request.headers().authorization),
    path: new URL(request.url()).pathname,
    status: response.status(),
    request: request.postDataJSON(),
    body,
  });
}

// The JOSE header of the client's JWT (not the token itself), to show which jku the sandbox sent.
function jwtHeader(authorization) {
  if (!authorization) return null;
  try {
    const part = authorization.split(' ')[1].split('.')[0];
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
}

function waitForExchange(page, method, pathEnd) {
  return page.waitForResponse(
    (r) => isService(r.url()) && r.request().method() === method && new URL(r.url()).pathname.endsWith(pathEnd),
    { timeout: STEP_TIMEOUT_MS },
  );
}

async function cardsOf(response) {
  const body = await response.json().catch(() => null);
  return (body && body.cards) || [];
}

// The card on screen whose summary the service sent (the sandbox renders each card as an MUI Card).
function cardOnScreen(page, card) {
  return page.locator('.MuiCard-root').filter({ hasText: card.summary.trim() });
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(config.screenshots, `${name}.png`), fullPage: true });
}

async function patientView(context) {
  const page = await context.newPage();
  const discovery = waitForExchange(page, 'GET', '/cds-services');
  const hook = waitForExchange(page, 'POST', '/cds-services/epidose-patient-view');
  await page.goto(sandboxUrl(config.patientView, 'patient-view', 'patient-view'));
  steps.discoveryStatus = (await discovery).status();
  const response = await hook;
  const cards = await cardsOf(response);
  steps.patientViewStatus = response.status();
  const card = cards.find((c) => c.overrideReasons && c.overrideReasons.length);
  if (card) {
    const shown = cardOnScreen(page, card);
    await shown.first().waitFor({ timeout: STEP_TIMEOUT_MS });
    steps.patientViewCardShown = true;
    await shot(page, 'patient-view');
    // Dismiss with an override reason (the configured system's first, else the first): the split
    // button's arrow opens the reasons menu.
    const reason = card.overrideReasons.find((r) => r.system === config.overrideSystem) || card.overrideReasons[0];
    const feedback = waitForExchange(page, 'POST', '/feedback');
    await shown.first().getByLabel('select dismiss reason').click();
    await page.getByRole('menuitem', { name: `Override: ${reason.display}`, exact: true }).click();
    const answer = await feedback;
    steps.overrideFeedback = { status: answer.status(), card: card.uuid, system: reason.system, reason: reason.code };
  }
  await page.close();
}

async function rxSign(context, dose, name) {
  const page = await context.newPage();
  await page.goto(sandboxUrl(config.rxSign, 'rx-sign', 'order-sign'));
  const input = page.locator('input[name="medication-input"]');
  await input.waitFor({ timeout: STEP_TIMEOUT_MS });
  await input.fill(dose.product);
  await page.getByRole('button', { name: dose.product, exact: true }).click();
  await page.locator('#dosage-amount').fill(String(dose.pills));
  await page.locator('#dosage-frequency').click();
  await page.getByRole('option', { name: dose.frequency, exact: true }).click();
  const hook = waitForExchange(page, 'POST', '/cds-services/epidose-order-sign');
  await page.getByRole('button', { name: 'Sign Order' }).click();
  const response = await hook;
  const cards = await cardsOf(response);
  const result = { status: response.status(), indicators: cards.map((c) => c.indicator), cards: cards.map((c) => c.uuid) };
  const card = cards.find((c) => c.suggestions && c.suggestions.length);
  if (cards.length) {
    await cardOnScreen(page, cards[0]).first().waitFor({ timeout: STEP_TIMEOUT_MS });
    result.cardShown = true;
  }
  await shot(page, name);
  if (card) {
    const suggestion = card.suggestions[0];
    const feedback = waitForExchange(page, 'POST', '/feedback');
    await cardOnScreen(page, card).first().getByRole('button', { name: suggestion.label, exact: true }).click();
    const answer = await feedback;
    result.acceptFeedback = { status: answer.status(), card: card.uuid, suggestion: suggestion.uuid };
  }
  await page.close();
  return result;
}

const browser = await chromium.launch({
  executablePath: config.chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === 'data:' || url.protocol === 'blob:' || LOOPBACK.has(url.hostname)) return route.continue();
    blocked.add(url.origin);
    return route.abort('blockedbyclient');
  });
  context.on('response', (response) => { record(response).catch(() => {}); });
  context.on('console', (message) => { if (message.type() === 'error') consoleErrors.push(message.text().slice(0, 300)); });
  await patientView(context);
  steps.normal = await rxSign(context, config.normalDose, 'rx-sign-normal');
  steps.absurd = await rxSign(context, config.absurdDose, 'rx-sign-absurd');
  await new Promise((resolve) => { setTimeout(resolve, 300); }); // let the last responses be recorded
} catch (error) {
  steps.error = String(error && error.stack ? error.stack : error).slice(0, 2000);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify({ steps, exchanges, blocked: [...blocked].sort(), consoleErrors }));
