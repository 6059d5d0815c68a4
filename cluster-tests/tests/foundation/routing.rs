use cluster_tests::{MockUpstream, client};

use crate::{gateway, header, json, service};

#[actix_rt::test]
async fn longest_prefix_wins_and_the_prefix_is_stripped() {
    let users = MockUpstream::start("users");
    let admin = MockUpstream::start("admin");
    let gw = gateway(&format!(
        "{}{}",
        service("users", &[&users], ""),
        service("users-admin", &[&admin], "prefix = \"/api/users/admin\"\nstrip_prefix = false"),
    ));
    let c = client();

    let res = c.get(gw.url("/api/users/42?b=2&a=1")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-upstream"), "users");
    let res = c.get(gw.url("/api/users")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = c.get(gw.url("/api/users/admin/7")).send().await.unwrap();
    assert_eq!(header(&res, "x-upstream"), "admin");

    let seen = users.recorded();
    assert_eq!(seen[0].path, "/42");
    assert_eq!(seen[0].query, "b=2&a=1");
    assert_eq!(seen[1].path, "/");
    assert_eq!(admin.recorded()[0].path, "/api/users/admin/7");
}

#[actix_rt::test]
async fn prefixes_match_whole_segments_and_unknown_paths_are_json_404s() {
    let users = MockUpstream::start("users");
    let gw = gateway(&service("users", &[&users], ""));
    let c = client();

    for path in ["/api/usersx", "/api", "/", "/other/api/users"] {
        let mut res = c.get(gw.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        let id = header(&res, "x-request-id");
        let body = json(&mut res).await;
        assert_eq!(body["error"], "route_not_found");
        assert_eq!(body["request_id"], id.as_str());
        assert!(body["message"].is_string());
    }
    assert_eq!(users.count(), 0);
}

#[actix_rt::test]
async fn host_specific_routes_win_over_host_less_ones() {
    let default = MockUpstream::start("default");
    let eu = MockUpstream::start("eu");
    let gw = gateway(&format!(
        "{}{}",
        service("users", &[&default], ""),
        service("users-eu", &[&eu], "prefix = \"/api/users\"\nhosts = [\"eu.example.com\"]"),
    ));
    let c = client();
    let res = c.get(gw.url("/api/users/1")).insert_header(("Host", "EU.example.com:8080")).send().await.unwrap();
    assert_eq!(header(&res, "x-upstream"), "eu");
    let res = c.get(gw.url("/api/users/1")).insert_header(("Host", "us.example.com")).send().await.unwrap();
    assert_eq!(header(&res, "x-upstream"), "default");
}

#[actix_rt::test]
async fn dot_segments_cannot_escape_a_prefix() {
    let public = MockUpstream::start("public");
    let private = MockUpstream::start("private");
    let gw = gateway(&format!("{}{}", service("public", &[&public], ""), service("private", &[&private], "")));
    let res = client().get(gw.url("/api/public/../private/secret")).send().await.unwrap();
    assert_eq!(header(&res, "x-upstream"), "private");
    assert_eq!(private.recorded()[0].path, "/secret");
    assert_eq!(public.count(), 0);
}

#[actix_rt::test]
async fn endpoint_base_paths_are_kept() {
    let up = MockUpstream::start("base");
    let gw = gateway(&format!("[[services]]\nname = \"v1\"\nendpoints = [\"{}/v1/\"]\n", up.url()));
    let c = client();
    assert_eq!(c.get(gw.url("/api/v1/items")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(gw.url("/api/v1")).send().await.unwrap().status(), 200);
    let seen = up.recorded();
    assert_eq!(seen[0].path, "/v1/items");
    assert_eq!(seen[1].path, "/v1");
}
