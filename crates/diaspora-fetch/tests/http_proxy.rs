//! Ambient proxy variables are ignored (a binary of its own: it changes the process environment).

use diaspora_fetch::http::{HttpClient, HttpSettings, Request};
use diaspora_testkit::{Server, repo};

#[test]
fn ambient_proxy_settings_are_ignored() {
    // SAFETY: the only test in this binary; nothing else reads the environment concurrently.
    unsafe {
        std::env::set_var("HTTP_PROXY", "http://127.0.0.1:9");
        std::env::set_var("http_proxy", "http://127.0.0.1:9");
        std::env::set_var("ALL_PROXY", "http://127.0.0.1:9");
    }
    let s = Server::start();
    let c = HttpClient::new(HttpSettings::default()).unwrap();
    let file = "data/sample/worldbank/NY.GDP.MKTP.KD.ZG_p3.json";
    let r = c.fetch(Request::get(s.url(&format!("/ok/{file}")), "direct")).unwrap();
    assert_eq!(r.bytes, std::fs::read(repo().join(file)).unwrap());
    assert_eq!(s.log("/ok/").len(), 1, "the request reached the server directly");
}
