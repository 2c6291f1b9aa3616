#!/usr/bin/env python3
"""Generates the benchmark corpus: a tree of real source text with planted Airwallex keys and hard
negatives, and a manifest of what was planted (fingerprints only, never the keys).

    bench/corpus.py [--out DIR] [--mb 420] [--seed 1]

Real text is harvested from what this machine already has (the cargo registry, Python installs,
C headers, docs, npm packages) and replicated under numbered copies until the tree reaches the
requested size. Into it go:

  * planted keys: random 96-hex keys (48 random bytes, like a real key) in every dialect the
    detectors cover: .env, Dockerfile, CI workflows, Helm values, properties, appsettings, tfvars,
    curl, fetch, Postman, HAR, SDK set-up code, Kubernetes Secrets (base64), notebooks, env and
    config lookups with a key as default (Python, JS/TS, Compose, Laravel, Spring, Ruby, Go, C#,
    PHP, Rust), prefixed/suffixed names and passwords, generic names in blocks that name Airwallex
    (YAML, GitLab CI), Terraform variable defaults, ECS and Kubernetes name/value pairs, prose
    (runbooks, tickets, chat exports, Markdown), upper-case keys, UTF-16 files (.reg, PowerShell
    exports, big-endian), and Airwallex-shaped access tokens;
  * hard negatives: SHA-384 digests (also next to the word airwallex, under Airwallex names, in
    upper case, in UTF-16, in checksum files, pip hashes, release notes), documentation
    placeholders, env lookups (`process.env.AIRWALLEX_API_KEY`, `os.environ[...]`, `${VAR}`) and
    lookups whose default is empty or a placeholder, masked keys, mixed-case hex, other vendors'
    JWTs, allow-commented lines and webhook secrets.

The manifest (`manifest.json` next to the tree, outside it) lists each planted secret's path and
fingerprint (`sha256:` + 16 hex of SHA-256, the findings contract), so `bench/check.py` can
compute recall and precision from awxguard's JSON report.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import sys

SOURCES = [
    os.path.expanduser("~/.cargo/registry/src"),
    "/root/.pyenv/versions",
    "/usr/lib/python3",
    "/usr/include",
    "/usr/share/doc",
    "/usr/lib/node_modules",
]
TEXT_EXT = {
    ".rs", ".toml", ".md", ".py", ".pyi", ".h", ".hpp", ".c", ".cc", ".js", ".mjs", ".cjs",
    ".ts", ".json", ".yml", ".yaml", ".txt", ".rst", ".html", ".css", ".sh", ".cfg", ".ini",
    ".go", ".java", ".rb", ".xml", ".in", ".lock",
}
# Files that would make ignore-aware and ignore-unaware tools scan different sets.
SKIP_NAMES = {".gitignore", ".ignore", ".rgignore", ".awxguardignore"}
MAX_FILE = 1 << 20


def fingerprint(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def harvest(limit_bytes):
    """Real text files, in a stable order, up to limit_bytes in total."""
    files, total = [], 0
    for src in SOURCES:
        if not os.path.isdir(src):
            continue
        for root, dirs, names in os.walk(src):
            dirs[:] = sorted(d for d in dirs if d not in (".git", "__pycache__"))
            for n in sorted(names):
                if n in SKIP_NAMES or os.path.splitext(n)[1] not in TEXT_EXT:
                    continue
                p = os.path.join(root, n)
                try:
                    if os.path.islink(p):
                        continue
                    size = os.path.getsize(p)
                except OSError:
                    continue
                if size == 0 or size > MAX_FILE:
                    continue
                try:
                    with open(p, "rb") as f:
                        head = f.read(8192)
                except OSError:
                    continue
                if b"\0" in head:
                    continue
                files.append((src, p, size))
                total += size
                if total >= limit_bytes:
                    return files, total
    return files, total


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims: dict, rng: random.Random, header=None) -> str:
    header = header or {"alg": "HS256"}
    sig = bytes(rng.getrandbits(8) for _ in range(32))
    return ".".join([b64url(json.dumps(header, separators=(",", ":")).encode()),
                     b64url(json.dumps(claims, separators=(",", ":")).encode()), b64url(sig)])


def uuid(rng):
    h = "%032x" % rng.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def client_id(rng):
    a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(rng.choice(a) for _ in range(22))


# Dialects: (file name, template). {k} is the key, {c} a client ID, {b} base64 of the key.
POSITIVE = [
    (".env", "NODE_ENV=production\nAIRWALLEX_CLIENT_ID={c}\nAIRWALLEX_API_KEY={k}\n"),
    (".env.production", "AIRWALLEX_PRODUCTION_API_KEY='{k}'\n"),
    ("Dockerfile", "FROM python:3.12-slim\nENV AIRWALLEX_API_KEY {k}\nCMD [\"python\", \"app.py\"]\n"),
    (".github/workflows/deploy.yml",
     "name: deploy\non: push\njobs:\n  deploy:\n    runs-on: ubuntu-latest\n    env:\n      AWX_API_KEY: \"{k}\"\n"),
    ("charts/payments/values.yaml",
     "airwallex:\n  baseUrl: https://api.airwallex.com\n  clientId: {c}\n  apiKey: {k}\n"),
    ("src/main/resources/application.properties", "server.port=8080\nairwallex.api-key={k}\n"),
    ("appsettings.json",
     '{{"Airwallex": {{"BaseUrl": "https://api.airwallex.com", "ClientId": "{c}", "ApiKey": "{k}"}}}}\n'),
    ("infra/prod.tfvars", 'region = "ap-southeast-2"\nairwallex_api_key = "{k}"\n'),
    ("scripts/login.sh",
     "#!/bin/sh\ncurl -X POST https://api.airwallex.com/api/v1/authentication/login \\\n"
     "  -H 'x-client-id: {c}' \\\n  -H 'x-api-key: {k}'\n"),
    ("web/client.js",
     "const res = await fetch(url, {{ method: 'POST', headers: {{ 'x-client-id': '{c}', 'x-api-key': '{k}' }} }});\n"),
    ("Airwallex.postman_collection.json",
     '{{"item": [{{"request": {{"header": [{{"key": "x-client-id", "value": "{c}"}}, '
     '{{"key": "x-api-key", "value": "{k}", "type": "text"}}]}}}}]}}\n'),
    ("session.har",
     '{{"log": {{"entries": [{{"request": {{"headers": [{{"name": "x-api-key", "value": "{k}"}}]}}}}]}}}}\n'),
    ("awx.postman_environment.json",
     '{{"values": [{{"key": "airwallex_api_key", "value": "{k}", "enabled": true}}]}}\n'),
    ("k8s/secret.yaml",
     "apiVersion: v1\nkind: Secret\nmetadata:\n  name: payments\ntype: Opaque\ndata:\n  API_KEY: {b}\n"),
    ("notebooks/payouts.ipynb",
     '{{"cells": [{{"cell_type": "code", "source": ["import os\\n", '
     '"os.environ[\\"AIRWALLEX_API_KEY\\"] = \\"{k}\\"\\n"]}}]}}\n'),
    ("pay.py",
     "from airwallex import Client\nclient = Client(client_id='{c}', api_key='{k}')\n"),
    # Env and config lookups whose default is a key, in many languages.
    ("settings.py", 'AIRWALLEX_API_KEY = os.getenv("AIRWALLEX_API_KEY", "{k}")\n'),
    ("jobs/sync.py", "key = os.environ.get('AIRWALLEX_SANDBOX_API_KEY') or '{k}'\n"),
    ("src/config.js", "module.exports = {{ apiKey: process.env.AIRWALLEX_API_KEY || '{k}' }};\n"),
    ("src/env.ts", 'export const awxKey = import.meta.env.VITE_AWX_API_KEY ?? "{k}";\n'),
    ("compose.yaml", "services:\n  payments:\n    environment:\n      AIRWALLEX_API_KEY: ${{AIRWALLEX_API_KEY:-{k}}}\n"),
    ("config/services.php", "'airwallex' => [\n    'api_key' => env('AIRWALLEX_API_KEY', '{k}'),\n],\n"),
    ("src/main/java/pay/AirwallexConfig.java", '@Value("${{airwallex.api-key:{k}}}")\nprivate String apiKey;\n'),
    ("config/initializers/airwallex.rb", "Airwallex.api_key = ENV.fetch('AIRWALLEX_API_KEY', '{k}')\n"),
    ("internal/config/config.go", 'apiKey := cmp.Or(os.Getenv("AIRWALLEX_API_KEY"), "{k}")\n'),
    ("Payments/Startup.cs", 'var apiKey = Environment.GetEnvironmentVariable("AIRWALLEX_API_KEY") ?? "{k}";\n'),
    ("src/Airwallex.php", "$key = getenv('AIRWALLEX_API_KEY') ?: '{k}';\n"),
    ("src/keys.rs", 'let key = std::env::var("AIRWALLEX_API_KEY").unwrap_or_else(|_| "{k}".to_string());\n'),
    # Names with prefixes, suffixes, passwords.
    (".env.prod", "AIRWALLEX_API_KEY_PROD={k}\nSTAGING_AIRWALLEX_KEY=\"{k2}\"\n"),
    ("deploy/secrets.env", "AIRWALLEX_PASSWORD={k}\n"),
    # A generic name close to where the text names Airwallex, and blocks over several lines.
    ("config/payments.yaml", "payments:\n  provider: airwallex\n  region: HK\n  api_key: {k}\n"),
    (".gitlab-ci.yml", "stages: [deploy]\n\ndeploy-airwallex:\n  stage: deploy\n  variables:\n    TOKEN: \"{k}\"\n  script:\n    - ./deploy.sh\n"),
    ("infra/variables.tf", 'variable "airwallex_api_key" {{\n  type        = string\n  sensitive   = true\n  default     = "{k}"\n}}\n'),
    ("infra/ecs.tf", 'environment = [\n  {{\n    name  = "AIRWALLEX_API_KEY"\n    value = "{k}"\n  }},\n]\n'),
    ("k8s/deployment.yaml", "      containers:\n        - name: payments\n          env:\n            - name: AIRWALLEX_API_KEY\n              value: \"{k}\"\n"),
    # Prose.
    ("docs/runbook.md", "## Rotating keys\n\nThe Airwallex production key (until we move it to Vault):\n\n```\n{k}\n```\n"),
    ("tickets/PAY-1422.txt", "Payouts fail with 401 since Monday. Airwallex said to retry with {k} and the usual client id.\n"),
    ("exports/slack/payments.json", '[{{"user": "U02", "text": "{k} is the new sandbox key for Airwallex"}}]\n'),
    # Upper-case hex ({K}); the finding's fingerprint is the lower-case key's.
    (".env.upper", "AIRWALLEX_API_KEY={K}\n"),
    # UTF-16 text: a Windows .reg export (BOM, little-endian), a PowerShell export without a BOM,
    # and big-endian with a BOM.
    ("airwallex.reg", 'Windows Registry Editor Version 5.00\r\n\r\n[HKEY_CURRENT_USER\\Environment]\r\n"AIRWALLEX_API_KEY"="{k}"\r\n', "utf-16"),
    ("env-export.txt", "Name                           Value\r\n----                           -----\r\nAIRWALLEX_API_KEY              {k}\r\n", "utf-16-le"),
    ("settings-be.ini", "[airwallex]\r\napi_key={k}\r\n", "utf-16-be-bom"),
]
# Appended to a harvested source file (a key in the middle of real code).
POSITIVE_INLINE = [
    ("\n# settings for the payouts job\nAIRWALLEX_API_KEY = \"{k}\"\n", "py"),
    ("\n// Airwallex sandbox\nconst AWX_API_KEY: &str = \"{k}\";\n", "rs"),
    ("\n/* x-api-key: {k} */\n", "any"),
    ("\nAirwallex sandbox key for the demo: {k}\n", "md"),
]
NEGATIVE = [
    ("checksums.sha384", "sha384  {h}  airwallex-sdk-1.2.0.tgz\n"),
    (".env.example", "AIRWALLEX_API_KEY=<your_api_key>\nAIRWALLEX_CLIENT_ID=<your_client_id>\n"),
    ("config/app.js", "const apiKey = process.env.AIRWALLEX_API_KEY;\nconst awx = new Airwallex({{ apiKey }});\n"),
    ("app.py", "import os\napi_key = os.environ[\"AIRWALLEX_API_KEY\"]\n"),
    ("docker-compose.yml", "services:\n  api:\n    environment:\n      AIRWALLEX_API_KEY: ${{AIRWALLEX_API_KEY}}\n"),
    ("docs/example.env", "AIRWALLEX_API_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"),
    (".env.sdk", "AIRWALLEX_SDK_SHA384={h}\n"),
    ("config.yaml", "stripe:\n  api_key: {h}\n"),
    (".env.allowed", "AIRWALLEX_API_KEY={h}  # awxguard:allow\n"),
    (".env.webhook", "AIRWALLEX_WEBHOOK_SECRET={h}\n"),
    ("auth_test.go", "token := \"{j}\"\n"),
    ("integrity.json", '{{"integrity": "sha384-{h}", "x-api-key-doc": "see airwallex docs"}}\n'),
    # Lookups whose default is empty or a placeholder; masked values.
    ("settings.py", 'AIRWALLEX_API_KEY = os.getenv("AIRWALLEX_API_KEY", "")\nCLIENT = os.environ.get("AIRWALLEX_CLIENT_ID", "changeme")\n'),
    ("compose.yaml", "environment:\n  AIRWALLEX_API_KEY: ${{AIRWALLEX_API_KEY:-changeme}}\n  AWX_API_KEY: ${{AWX_API_KEY:?set it}}\n"),
    ("config/services.php", "'api_key' => env('AIRWALLEX_API_KEY', 'your-api-key'),\n"),
    ("k8s/deployment.yaml", "env:\n  - name: AIRWALLEX_API_KEY\n    valueFrom:\n      secretKeyRef: {{name: airwallex, key: api-key}}\n"),
    ("logs/startup.log", "loaded AIRWALLEX_API_KEY={h4}{stars}{h_4}\nairwallex key {h4}\u2026{h_4}\n"),
    # Digests, checksums and lock-file hashes next to Airwallex names and words.
    ("requirements.txt", "airwallex==1.2.0 --hash=sha384:{h}\n"),
    ("SHA384SUMS", "{h}  airwallex-node-1.2.0.tgz\n"),
    ("docs/release.md", "Airwallex SDK 1.2.0 is out. Checksum (SHA-384):\n\n    {h}\n"),
    ("CHANGELOG.md", "Upgrade the airwallex SDK; its bundle digest is {h}.\n"),
    (".env.sha", "AIRWALLEX_API_KEY_SHA384={H}\n"),
    ("build.log", "SHA384(airwallex-sdk.tgz)= {H}\n"),
    ("infra/checksum.tf", 'variable "airwallex_bundle_checksum" {{\n  default = "{h}"\n}}\n'),
    ("config/sdk.yaml", "payments:\n  provider: airwallex\n  sdk_sha384: {h}\n"),
    ("src/Keys.java", 'String awxKeyId = "{hm}";\n'),
    ("digests-utf16.txt", "AIRWALLEX_SDK_SHA384={h}\r\n", "utf-16"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/awxguard-bench-corpus")
    ap.add_argument("--mb", type=int, default=420)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--plants", type=int, default=400, help="planted positives")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    target = args.mb * 1_000_000
    files, total = harvest(target)
    if not files:
        sys.exit("no source text found to harvest")
    out = os.path.abspath(args.out)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    written, copy, paths = 0, 0, []
    while written < target:
        for src, p, size in files:
            rel = os.path.relpath(p, src)
            dest = os.path.join(out, f"copy{copy}", os.path.basename(src), rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(p, dest)
            paths.append(dest)
            written += size
            if written >= target:
                break
        copy += 1
    dirs = sorted({os.path.dirname(p) for p in paths})
    planted, negatives = [], 0

    def new_key():
        return "%096x" % rng.getrandbits(384)

    def plant_file(name, text, encoding=None):
        d = rng.choice(dirs)
        dest = os.path.join(d, f"awx{len(planted) + negatives}", name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if encoding == "utf-16-be-bom":
            data = ("\ufeff" + text).encode("utf-16-be")
        else:
            data = text.encode(encoding or "utf-8")
        with open(dest, "wb") as f:
            f.write(data)
        return os.path.relpath(dest, out)

    for i in range(args.plants):
        k, c = new_key(), client_id(rng)
        if i % 10 == 9:  # an Airwallex access token in a log
            now = 1764000000 + rng.randrange(10_000_000)
            claims = {"type": "client", "dc": "HK", "data_center_region": "HK", "issdc": "US",
                      "jti": uuid(rng), "sub": uuid(rng), "iat": now, "exp": now + 1800,
                      "account_id": uuid(rng), "api_version": "2025-02-14",
                      "permissions": ["r:awx:*:*", "w:awx:*:*"]}
            tok = jwt(claims, rng)
            rel = plant_file("debug.log", f"2025-11-24 10:00:01 DEBUG login ok token={tok}\n")
            planted.append({"path": rel, "rule": "leak.airwallex.access-token",
                            "fingerprint": fingerprint(tok), "dialect": "jwt"})
        elif i % 5 == 4:  # inline, inside a real source file
            tmpl, ext = POSITIVE_INLINE[(i // 10) % len(POSITIVE_INLINE)]
            cands = [p for p in rng.sample(paths, 200) if ext == "any" or p.endswith("." + ext)]
            p = cands[0] if cands else rng.choice(paths)
            with open(p, "a") as f:
                f.write(tmpl.format(k=k))
            planted.append({"path": os.path.relpath(p, out), "rule": "leak.airwallex.api-key",
                            "fingerprint": fingerprint(k), "dialect": "inline-" + ext})
        else:
            name, tmpl, *enc = POSITIVE[i % len(POSITIVE)]
            b = base64.b64encode(k.encode()).decode()
            k2 = new_key()
            rel = plant_file(name, tmpl.format(k=k, c=c, b=b, K=k.upper(), k2=k2), *enc)
            for key in (k, k2) if "{k2}" in tmpl else (k,):
                planted.append({"path": rel, "rule": "leak.airwallex.api-key",
                                "fingerprint": fingerprint(key), "dialect": name})
    for i in range(args.plants):
        name, tmpl, *enc = NEGATIVE[i % len(NEGATIVE)]
        h = hashlib.sha384(rng.getrandbits(64).to_bytes(8, "big")).hexdigest()
        other = jwt({"iss": "https://auth.example.com", "sub": f"user-{i}", "aud": "example-api",
                     "iat": 1764000000, "exp": 1764003600, "scope": "read write"}, rng,
                    {"alg": "HS256", "typ": "JWT"})
        mixed = "".join(ch.upper() if rng.random() < 0.5 else ch for ch in h)
        plant_file(name, tmpl.format(h=h, j=other, H=h.upper(), hm=mixed, h4=h[:4], h_4=h[-4:],
                                     stars="*" * 88), *enc)
        negatives += 1
    # Bare SHA-384 digests sprinkled into real files, too.
    for p in rng.sample(paths, min(2000, len(paths))):
        h = hashlib.sha384(p.encode()).hexdigest()
        with open(p, "a") as f:
            f.write(f"\n# sha384: {h}\n")
        negatives += 1
    nfiles, nbytes = 0, 0
    for root, _, names in os.walk(out):
        for n in names:
            nfiles += 1
            nbytes += os.path.getsize(os.path.join(root, n))
    manifest = {"root": out, "files": nfiles, "bytes": nbytes, "planted": planted,
                "negatives": negatives}
    with open(out + ".manifest.json", "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"corpus: {out}: {nfiles} files, {nbytes / 1e6:.1f} MB; planted {len(planted)} secrets "
          f"({sum(p['rule'].endswith('api-key') for p in planted)} API keys, "
          f"{sum(p['rule'].endswith('access-token') for p in planted)} access tokens) and "
          f"{negatives} hard negatives; manifest {out}.manifest.json")


if __name__ == "__main__":
    main()
