//! `spec.wandb.waitForUrl`: `up` is ready only once the W&B host answers over HTTP, checked
//! against a real HTTP server (Python's `http.server`) and a port nobody listens on.

use std::process::{Child, Command, Stdio};
use wbstack_test_support::{last_json, step_report, text, Env};

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Python's HTTP server on `port`, once it accepts connections.
fn http_server(port: u16, dir: &std::path::Path) -> Server {
    let server = Server(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("http.server did not start on {port}");
}

fn plan(env: &Env, port: u16) -> String {
    let text = std::fs::read_to_string(Env::plans().join("poc.yaml"))
        .unwrap()
        .replace(
            "    host: https://wandb-dev.company.com\n",
            &format!("    host: http://127.0.0.1:{port}\n    waitForUrl: true\n"),
        );
    assert!(text.contains("waitForUrl: true"));
    env.plan_from(&format!("url-{port}.yaml"), &text)
}

#[test]
fn up_waits_for_the_host_to_answer_and_says_why_it_does_not() {
    let env = Env::new(50);
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), "W&B").unwrap();
    let port = free_port();
    let _server = http_server(port, site.path());
    let p = plan(&env, port);
    let out = env.ok(&["up", "--plan", &p, "--output", "json"]);
    let report = last_json(&out);
    let step = step_report(&report, "http.wandb-url");
    assert_eq!(step["outcome"], "created", "{report}");
    let o = env.run(&["output", "--env", "wandb-dev", "--output", "json"]);
    let o: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o["steps"]["http.wandb-url"]["status"], 200, "{o}");
    env.ok(&["down", "--env", "wandb-dev"]);

    // Nobody listens: the wait ends at the timeout, naming the URL and why.
    let closed = free_port();
    let p = plan(&env, closed);
    let out = env.expect(&["up", "--plan", &p, "--timeout", "3"], 1);
    let shown = text(&out);
    assert!(shown.contains("http.wandb-url"), "{shown}");
    assert!(
        shown.contains(&format!("http://127.0.0.1:{closed} does not answer")),
        "{shown}"
    );
}
