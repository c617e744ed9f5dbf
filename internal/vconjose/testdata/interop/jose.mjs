// The second JOSE implementation of internal/vconjose's interop test:
// panva's jose (npm), run by interop_test.go with node. It reads one JSON
// request on stdin and writes one JSON answer on stdout:
//
//   {"op":"verify","jws":{...},"cert":"PEM"|"jwk":{...},"alg":"ES256"}
//       -> {"payload":"<the payload as text>","header":{...}}
//   {"op":"sign","alg":"ES256","key":"PKCS8 PEM","payload":"<text>","header":{...}}
//       -> the General JWS JSON Serialization
//   {"op":"encrypt","plaintext":"<text>","cert":"PEM","uuid":"..."}
//       -> the General JWE JSON Serialization, with the draft's headers
//   {"op":"decrypt","jwe":{...},"key":"PKCS8 PEM"}
//       -> {"plaintext":"<text>","unprotected":{...}}
//
// jose enforces RFC 7515 and 7516 on its own: disjoint protected and
// unprotected headers, known algorithms, the key's type.
import * as jose from 'jose';

const read = async () => {
  let s = '';
  for await (const chunk of process.stdin) s += chunk;
  return JSON.parse(s);
};

const enc = new TextEncoder();
const dec = new TextDecoder();

const publicKey = (req, alg) => (req.cert ? jose.importX509(req.cert, alg) : jose.importJWK(req.jwk, alg));

const ops = {
  async verify(req) {
    const key = await publicKey(req, req.alg);
    const { payload, protectedHeader, unprotectedHeader } = await jose.generalVerify(req.jws, key, { algorithms: [req.alg] });
    return { payload: dec.decode(payload), protected: protectedHeader, header: unprotectedHeader };
  },
  async sign(req) {
    const key = await jose.importPKCS8(req.key, req.alg);
    return new jose.GeneralSign(enc.encode(req.payload))
      .addSignature(key)
      .setProtectedHeader({ alg: req.alg })
      .setUnprotectedHeader(req.header)
      .sign();
  },
  async encrypt(req) {
    const key = await jose.importX509(req.cert, 'RSA-OAEP');
    return new jose.GeneralEncrypt(enc.encode(req.plaintext))
      .setProtectedHeader({ enc: 'A256CBC-HS512' })
      .setSharedUnprotectedHeader({ cty: 'application/vcon', uuid: req.uuid })
      .addRecipient(key)
      .setUnprotectedHeader({ alg: 'RSA-OAEP' })
      .encrypt();
  },
  async decrypt(req) {
    const key = await jose.importPKCS8(req.key, 'RSA-OAEP');
    const { plaintext, sharedUnprotectedHeader } = await jose.generalDecrypt(req.jwe, key, { keyManagementAlgorithms: ['RSA-OAEP'] });
    return { plaintext: dec.decode(plaintext), unprotected: sharedUnprotectedHeader };
  },
};

try {
  const req = await read();
  process.stdout.write(JSON.stringify(await ops[req.op](req)));
} catch (e) {
  process.stderr.write(`${e.code || e.name}: ${e.message}\n`);
  process.exit(1);
}
