// An OpenID provider built on oidc-provider (OpenID-certified, FAPI-CIBA included) with
// CIBA in poll mode, for the CIBA client's interoperability tests.
//
// Started as `node provider.mjs CLIENT_ID CLIENT_SECRET`; it listens on two free ports of
// 127.0.0.1 and prints one JSON line: {"issuer": "...", "control": "http://127.0.0.1:PORT"}.
//
// * Its routes are mapped to Auth0's paths (auth0-python builds them from the domain):
//   backchannel_authentication /backchannel -> /bc-authorize, token /token -> /oauth/token,
//   jwks /jwks -> /.well-known/jwks.json. Nothing else of the provider changes.
// * processLoginHint accepts Auth0's iss_sub JSON ({"format":"iss_sub","iss":ISSUER,
//   "sub":...}) and nothing else; validateBindingMessage applies Auth0's rules (at most 64
//   letters, digits, spaces or +-_.,:#) instead of oidc-provider's stricter default.
// * The control server stands for the person's authentication device:
//   GET /pending lists the requests waiting (auth_req_id, sub, binding_message);
//   POST /approve and /deny with {"auth_req_id": ...} end one with a Grant or AccessDenied
//   through provider.backchannelResult().
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const [clientId, clientSecret] = process.argv.slice(2);
if (!clientId || !clientSecret) {
  console.error('usage: node provider.mjs CLIENT_ID CLIENT_SECRET');
  process.exit(2);
}

const ACCOUNTS = new Set(['auth0|alice', 'auth0|bob', 'auth0|carol', 'auth0|dave']);
const BINDING_MESSAGE = /^[A-Za-z0-9+\-_.,:#](?:[A-Za-z0-9+\-_.,:# ]{0,62}[A-Za-z0-9+\-_.,:#])?$/;
const pending = new Map(); // auth_req_id -> {sub, binding_message}

function listen(server) {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

const main = http.createServer();
const port = await listen(main);
const issuer = `http://127.0.0.1:${port}/`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['urn:openid:params:grant-type:ciba'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
      backchannel_token_delivery_mode: 'poll',
      id_token_signed_response_alg: 'RS256',
    },
  ],
  jwks: { keys: [signingKey] },
  routes: {
    backchannel_authentication: '/bc-authorize',
    token: '/oauth/token',
    jwks: '/.well-known/jwks.json',
  },
  findAccount(ctx, id) {
    if (!ACCOUNTS.has(id)) return undefined;
    return { accountId: id, async claims() { return { sub: id }; } };
  },
  features: {
    devInteractions: { enabled: false },
    ciba: {
      enabled: true,
      deliveryModes: ['poll'],
      processLoginHint(ctx, loginHint) {
        let hint;
        try {
          hint = JSON.parse(loginHint);
        } catch {
          throw new errors.InvalidRequest('login_hint must be JSON');
        }
        const keys = hint && typeof hint === 'object' && !Array.isArray(hint) ? Object.keys(hint).sort() : [];
        if (keys.join(',') !== 'format,iss,sub' || hint.format !== 'iss_sub'
            || typeof hint.sub !== 'string') {
          throw new errors.InvalidRequest('login_hint must be an iss_sub object');
        }
        if (hint.iss !== issuer) {
          throw new errors.InvalidRequest('login_hint iss does not match the issuer');
        }
        return hint.sub;
      },
      validateBindingMessage(ctx, bindingMessage) {
        if (bindingMessage === undefined || !BINDING_MESSAGE.test(bindingMessage)) {
          throw new errors.InvalidBindingMessage('binding_message must be 1 to 64 letters, digits, spaces or +-_.,:#');
        }
      },
      validateRequestContext() {},
      verifyUserCode() {},
      triggerAuthenticationDevice(ctx, request, account) {
        pending.set(request.jti, { sub: account.accountId, binding_message: request.params.binding_message });
      },
    },
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));
main.on('request', provider.callback());

async function decide(authReqId, approve) {
  const request = await provider.BackchannelAuthenticationRequest.find(authReqId);
  if (!request || !pending.has(authReqId)) return false;
  pending.delete(authReqId);
  if (approve) {
    const grant = new provider.Grant({ clientId: request.clientId, accountId: request.accountId });
    grant.addOIDCScope(request.scope);
    await grant.save();
    await provider.backchannelResult(request, grant);
  } else {
    await provider.backchannelResult(request, new errors.AccessDenied('the end-user denied the request'));
  }
  return true;
}

const control = http.createServer(async (req, res) => {
  const reply = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  try {
    if (req.method === 'GET' && req.url === '/pending') {
      reply(200, [...pending].map(([id, v]) => ({ auth_req_id: id, ...v })));
      return;
    }
    if (req.method === 'POST' && (req.url === '/approve' || req.url === '/deny')) {
      let raw = '';
      for await (const chunk of req) raw += chunk;
      const { auth_req_id: id } = JSON.parse(raw);
      const done = await decide(String(id), req.url === '/approve');
      reply(done ? 200 : 404, { done });
      return;
    }
    reply(404, { error: 'not_found' });
  } catch (err) {
    reply(500, { error: String(err) });
  }
});
const controlPort = await listen(control);

process.stdout.write(`${JSON.stringify({ issuer, control: `http://127.0.0.1:${controlPort}` })}\n`);
process.stdin.on('end', () => process.exit(0)); // the test run ended: stop with it
process.stdin.resume();
