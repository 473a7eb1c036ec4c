// An independent peer for ScanPay's provider interop tests: Alipay's official Node SDK
// (alipay-sdk) and wechatpay-axios-plugin sign, verify and encrypt exactly as they do for real
// merchants; Node's crypto checks ScanPay's merchant webhook signatures as a merchant would.
// The Rust tests (server/tests/interop.rs, webhooks.rs) send one JSON command on stdin and
// read one JSON answer on stdout.
'use strict';
const { AlipaySdk } = require('alipay-sdk');
// The SDK's request signer is not exported; load its own module file directly.
const alipayUtil = require(require.resolve('alipay-sdk').replace(/index\.js$/, 'util.js'));
const { Rsa, Formatter, Aes, Wechatpay } = require('wechatpay-axios-plugin');

async function handle(cmd) {
  switch (cmd.op) {
    // The SDK as a merchant's client of a gateway: signs, sends, verifies the response.
    case 'alipay.exec': {
      const sdk = new AlipaySdk({
        appId: cmd.appId, privateKey: cmd.privateKey, alipayPublicKey: cmd.alipayPublicKey, gateway: cmd.gateway, camelcase: false,
        keyType: cmd.privateKey.includes('BEGIN PRIVATE KEY') ? 'PKCS8' : 'PKCS1',
      });
      try {
        return { result: await sdk.exec(cmd.method, { bizContent: cmd.bizContent }, { validateSign: true }) };
      } catch (e) {
        return { error: String(e && e.message ? e.message : e) };
      }
    }
    // wechatpay-axios-plugin as a merchant's client: signs requests, verifies responses.
    case 'wechat.call': {
      const wxpay = new Wechatpay({
        mchid: cmd.mchid, serial: cmd.serial, privateKey: cmd.privateKey,
        certs: { [cmd.keyId]: cmd.publicKey }, baseURL: cmd.baseURL,
      });
      const calls = {
        native: () => wxpay.v3.pay.transactions.native.post(cmd.body),
        query: () => wxpay.v3.pay.transactions['out-trade-no']['{out_trade_no}'].get({ params: { mchid: cmd.mchid }, out_trade_no: cmd.outTradeNo }),
        close: () => wxpay.v3.pay.transactions['out-trade-no']['{out_trade_no}'].close.post({ mchid: cmd.mchid }, { out_trade_no: cmd.outTradeNo }),
      };
      try {
        const res = await calls[cmd.call]();
        return { status: res.status, data: res.data ?? null };
      } catch (e) {
        return { error: String(e && e.message ? e.message : e), status: e.response ? e.response.status : null, data: e.response ? e.response.data : null };
      }
    }
    // Verifies params signed the request way (sign_type kept) or the notification way
    // (sign_type dropped): the SDK's checkNotifySign tries both.
    case 'alipay.verify': {
      const sdk = new AlipaySdk({ appId: '2021000000000000', privateKey: cmd.anyPrivateKey, alipayPublicKey: cmd.publicKey });
      return { valid: sdk.checkNotifySignV2({ ...cmd.params }) };
    }
    // The SDK signs a request the way it does before calling the gateway.
    case 'alipay.signRequest': {
      const config = { appId: cmd.appId, privateKey: cmd.privateKey, signType: 'RSA2', charset: 'utf-8', version: '1.0' };
      const params = { bizContent: cmd.bizContent };
      if (cmd.notifyUrl) params.notifyUrl = cmd.notifyUrl;
      return { params: alipayUtil.sign(cmd.method, params, config) };
    }
    // The JSAPI page's paySign, checked as WeChat does: SHA256withRSA over
    // `appId\ntimeStamp\nnonceStr\npackage\n` with the merchant's public key.
    case 'wechat.verifyPaySign': {
      const p = cmd.params;
      const message = Formatter.joinedByLineFeed(p.appId, p.timeStamp, p.nonceStr, p.package);
      return { valid: Rsa.verify(message, p.paySign, cmd.publicKey), message };
    }
    case 'wechat.verifyRequest': {
      const message = Formatter.request(cmd.method, cmd.uri, cmd.timestamp, cmd.nonce, cmd.body);
      return { valid: Rsa.verify(message, cmd.signature, cmd.publicKey) };
    }
    // Signs a response/notification and encrypts its resource as WeChat Pay does.
    case 'wechat.notification': {
      const ciphertext = Aes.AesGcm.encrypt(cmd.plaintext, cmd.apiv3Key, cmd.nonce, cmd.aad);
      const body = JSON.stringify({
        id: cmd.id,
        create_time: '2026-11-27T10:00:00+08:00',
        resource_type: 'encrypt-resource',
        event_type: 'TRANSACTION.SUCCESS',
        summary: '支付成功',
        resource: { original_type: 'transaction', algorithm: 'AEAD_AES_256_GCM', ciphertext, associated_data: cmd.aad, nonce: cmd.nonce },
      });
      const signature = Rsa.sign(Formatter.response(cmd.timestamp, cmd.headerNonce, body), cmd.privateKey);
      return { body, signature };
    }
    // A merchant's webhook receiver, written with Node's own crypto: checks
    // `ScanPay-Signature: t=<t>,v1=<hex>` as HMAC-SHA256(secret, `${t}.${body}`).
    case 'webhook.verify': {
      const crypto = require('crypto');
      const parts = Object.fromEntries(cmd.header.split(',').map((kv) => kv.split('=', 2)));
      const expected = crypto.createHmac('sha256', cmd.secret).update(`${parts.t}.${cmd.body}`).digest();
      const given = Buffer.from(parts.v1 || '', 'hex');
      return { valid: given.length === expected.length && crypto.timingSafeEqual(given, expected), t: Number(parts.t) };
    }
    // The merchant API's answers against its OpenAPI 3.1 document, with Ajv (JSON Schema
    // 2020-12, which OpenAPI 3.1 schemas are): each sample is {method, path, status, body},
    // with `path` the document's template (`/orders/{id}`).
    case 'openapi.validate': {
      const Ajv2020 = require('ajv/dist/2020').default;
      const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
      const doc = cmd.document;
      return cmd.samples.map((s) => {
        const op = (doc.paths[s.path] || {})[s.method.toLowerCase()];
        const response = op && op.responses[String(s.status)];
        const media = response && response.content && response.content['application/json'];
        if (!media) return { ok: false, errors: [`no ${s.method} ${s.path} → ${s.status} in the document`] };
        const validate = ajv.compile({ ...media.schema, components: doc.components });
        const ok = validate(s.body);
        return { ok, errors: ok ? [] : validate.errors.map((e) => `${e.instancePath} ${e.message}`) };
      });
    }
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (c) => (input += c));
process.stdin.on('end', async () => {
  try {
    process.stdout.write(JSON.stringify(await handle(JSON.parse(input))));
  } catch (e) {
    process.stderr.write(String(e && e.stack ? e.stack : e));
    process.exit(1);
  }
});
