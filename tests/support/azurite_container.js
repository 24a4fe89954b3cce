// Creates a blob container on Azurite with the emulator's well-known account key.
const http = require("http");
const crypto = require("crypto");
const [port, container] = process.argv.slice(2);
const account = "devstoreaccount1";
const key = Buffer.from(
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
  "base64");
const date = new Date().toUTCString();
const version = "2021-08-06";
const path = `/${account}/${container}`;
const toSign = ["PUT", "", "", "", "", "", "", "", "", "", "", "",
  `x-ms-date:${date}`, `x-ms-version:${version}`,
  `/${account}/${account}/${container}`, "restype:container"].join("\n");
const sig = crypto.createHmac("sha256", key).update(toSign, "utf8").digest("base64");
const req = http.request({ host: "127.0.0.1", port, method: "PUT", path: `${path}?restype=container`,
  headers: { "x-ms-date": date, "x-ms-version": version, "Content-Length": 0,
    Authorization: `SharedKey ${account}:${sig}` } }, (res) => {
  let body = "";
  res.on("data", (c) => (body += c));
  res.on("end", () => { if (res.statusCode !== 201 && res.statusCode !== 409) { console.error(res.statusCode, body); process.exit(1); } });
});
req.on("error", (e) => { console.error(e.message); process.exit(1); });
req.end();
