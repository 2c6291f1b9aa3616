//! The floor of the HTTP engine `awxguard proxy` is built on, for `bench/proxy.sh`: a forwarder
//! with hyper 1's HTTP/1.1 server and client connections and nothing else (no attribution, no
//! policy, no recording, no timeouts, no TLS). Each downstream connection has its own upstream
//! connection, opened on its first request and driven by its own task, as hyper's documentation
//! shows. What this costs per request is what any hyper-based proxy pays before doing its job;
//! the benchmark prints it beside awxguard and nginx.
//!
//!   cargo run --release --example bare_forward -- LISTEN_ADDR UPSTREAM_ADDR [THREADS]

use http::{Request, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::sync::Mutex;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: bare_forward LISTEN_ADDR UPSTREAM_ADDR [THREADS]".into());
    }
    let per_core = args.get(3).is_some_and(|t| t.ends_with('p'));
    let threads: usize = args
        .get(3)
        .map_or(Ok(1), |t| t.trim_end_matches('p').parse())?;
    if per_core {
        // one single-threaded event loop per thread, each with its own listening socket on the
        // same address (SO_REUSEPORT: the kernel spreads the connections), as nginx's workers
        let loops: Vec<_> = (0..threads)
            .map(|_| {
                let (listen, upstream) = (args[1].clone(), args[2].clone());
                std::thread::spawn(move || -> std::io::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async move {
                        let sock = tokio::net::TcpSocket::new_v4()?;
                        sock.set_reuseport(true)?;
                        sock.bind(listen.parse().map_err(std::io::Error::other)?)?;
                        serve(sock.listen(1024)?, upstream).await
                    })
                })
            })
            .collect();
        for l in loops {
            l.join().map_err(|_| "a loop panicked")??;
        }
        return Ok(());
    }
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args[1]).await?;
        serve(listener, args[2].clone()).await
    })?;
    Ok(())
}

async fn serve(listener: tokio::net::TcpListener, upstream: String) -> std::io::Result<()> {
    let upstream: Arc<str> = upstream.into();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let lane: Arc<Mutex<Option<SendRequest<Incoming>>>> = Arc::new(Mutex::new(None));
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (lane, upstream) = (lane.clone(), upstream.clone());
                async move { forward(&lane, &upstream, req).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    lane: &Mutex<Option<SendRequest<Incoming>>>,
    upstream: &str,
    req: Request<Incoming>,
) -> std::io::Result<hyper::Response<Incoming>> {
    let mut lane = lane.lock().await;
    let mut sender = match lane.take() {
        Some(s) if !s.is_closed() => s,
        _ => {
            let io = tokio::net::TcpStream::connect(upstream).await?;
            let _ = io.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(conn);
            sender
        }
    };
    sender.ready().await.map_err(std::io::Error::other)?;
    let (mut parts, body) = req.into_parts();
    // origin form, as an HTTP/1.1 client sends it
    parts.uri = Uri::builder()
        .path_and_query(parts.uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(std::io::Error::other)?;
    let resp = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(std::io::Error::other)?;
    *lane = Some(sender);
    Ok(resp)
}
