//! Real receiving ends for the alert tests, on loopback: an SMTP server (Python's aiosmtpd,
//! STARTTLS required, a certificate signed by a CA made here and trusted through `ca_file`) and
//! a small HTTP receiver for the webhook.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/alerts/smtp_server.py"
);

/// Whether aiosmtpd can run here. Outside CI a missing aiosmtpd skips the test with a loud
/// message; in CI (`CI` set, as `.ci/run` does) it fails the test.
pub fn smtp_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("python3 with aiosmtpd is required in CI (.ci/run installs it with pip)");
        }
        eprintln!(
            "\n*** SKIPPED: python3 -c 'import aiosmtpd' failed; run `pip install aiosmtpd` (as \
             .ci/run does) to run the SMTP tests ***\n"
        );
    }
    ok
}

/// A test CA and a server certificate for 127.0.0.1 and localhost, as PEM files in `dir`.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    pub fn make(dir: &Path) -> Certs {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "awxguard test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let mut leaf =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "awxguard test SMTP");
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        let certs = Certs {
            ca: dir.join("ca.pem"),
            cert: dir.join("smtp-cert.pem"),
            key: dir.join("smtp-key.pem"),
        };
        std::fs::write(&certs.ca, ca.pem()).unwrap();
        std::fs::write(&certs.cert, leaf.pem()).unwrap();
        std::fs::write(&certs.key, leaf_key.serialize_pem()).unwrap();
        certs
    }
}

/// A loopback port nothing listens on (right now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How the SMTP server behaves.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// `0` picks a free port.
    pub port: u16,
    /// Never answer DATA (the message is not accepted).
    pub stall: bool,
    pub implicit_tls: bool,
    /// Require AUTH with this user and password.
    pub auth: Option<(String, String)>,
}

/// A running aiosmtpd; killed when dropped.
pub struct Smtp {
    child: Child,
    pub port: u16,
    /// Where accepted messages land (`*.eml`).
    pub dir: PathBuf,
}

impl Smtp {
    pub fn start(certs: &Certs, dir: &Path, opts: &SmtpOptions) -> Smtp {
        std::fs::create_dir_all(dir).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(SCRIPT)
            .args(["--port", &opts.port.to_string()])
            .arg("--cert")
            .arg(&certs.cert)
            .arg("--key")
            .arg(&certs.key)
            .arg("--dir")
            .arg(dir)
            .args(["--mode", if opts.stall { "stall" } else { "accept" }])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if opts.implicit_tls {
            cmd.arg("--implicit-tls");
        }
        if let Some((u, p)) = &opts.auth {
            cmd.args(["--user", u, "--password", p]);
        }
        let mut child = cmd.spawn().expect("start python3 smtp_server.py");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("SMTP server did not start");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("SMTP server said {line:?}"));
        Smtp {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// The accepted messages, oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// Whether a DATA arrived at a stalling server.
    pub fn stalled(&self) -> bool {
        self.dir.join(".stalled").exists()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// A loopback HTTP receiver: answers each POST with the next status of `statuses` (then 200)
/// and keeps the requests it answered with 2xx.
pub struct Hook {
    pub url: String,
    pub accepted: Arc<Mutex<Vec<Received>>>,
    pub seen: Arc<Mutex<usize>>,
}

impl Hook {
    pub fn start(statuses: Vec<u16>) -> Hook {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/T0KEN-in-path", l.local_addr().unwrap());
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(0usize));
        let (acc, n) = (accepted.clone(), seen.clone());
        let statuses = Arc::new(Mutex::new(statuses.into_iter()));
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut headers = Vec::new();
                let mut line = String::new();
                let _ = reader.read_line(&mut line); // request line
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                *n.lock().unwrap() += 1;
                let status = statuses.lock().unwrap().next().unwrap_or(200);
                if (200..300).contains(&status) {
                    acc.lock().unwrap().push(Received { headers, body });
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
            }
        });
        Hook {
            url,
            accepted,
            seen,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.accepted.lock().unwrap().clone()
    }
}

/// Waits (bounded) until `cond` holds.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
