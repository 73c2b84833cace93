//! The real [`Agent`]: one gRPC call to the node agent's `CNIApi`, on its unix socket (or a
//! loopback address), bounded by the netconf's `timeout`.

use proto::v1::cni_api_client::CniApiClient;
use proto::v1::{self as pb};
use tonic::transport::Channel;

use crate::Agent;
use crate::conf::{Attachment, NetConf};
use crate::env::Env;
use crate::error::{CniError, Code};
use crate::result::{self, CniResult};

pub struct GrpcAgent;

fn unreachable(endpoint: &str, e: impl std::fmt::Display) -> CniError {
    CniError::new(
        Code::TryAgainLater,
        format!("the sart agent at {endpoint} cannot be reached: {e}"),
    )
}

/// A gRPC status as a CNI error (see cni.proto for the mapping).
fn from_status(s: &tonic::Status, status_call: bool) -> CniError {
    CniError::new(
        Code::from_number(proto::cni_error_code(s.code(), status_call)),
        s.message().to_owned(),
    )
}

async fn connect(conf: &NetConf) -> Result<CniApiClient<Channel>, CniError> {
    proto::connect(&conf.endpoint, conf.timeout)
        .await
        .map(CniApiClient::new)
        .map_err(|err| unreachable(&conf.endpoint, err))
}

fn args(env: &Env, conf_json: &str, prev: Option<&serde_json::Value>) -> pb::Args {
    pb::Args {
        container_id: env.container_id.clone().unwrap_or_default(),
        netns: env.netns.clone().unwrap_or_default(),
        ifname: env.ifname.clone().unwrap_or_default(),
        path: Vec::new(),
        // Both forms: the pairs for us, the runtime's K=V;K=V for sart's agent.
        args: env
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";"),
        args_map: env.args.clone().into_iter().collect(),
        conf_json: conf_json.to_owned(),
        prev_result_json: prev.map(|p| p.to_string()).unwrap_or_default(),
        prev_result: None,
        conf: None,
        data: String::new(),
    }
}

fn to_result(r: pb::CniResult) -> Result<CniResult, CniError> {
    let bad = |what: String| CniError::new(Code::Agent, format!("the agent's result: {what}"));
    let interfaces = r
        .interfaces
        .into_iter()
        .map(|i| result::Interface {
            name: i.name,
            mac: Some(i.mac).filter(|m| !m.is_empty()),
            sandbox: Some(i.sandbox).filter(|s| !s.is_empty()),
            mtu: Some(i.mtu).filter(|m| *m != 0),
        })
        .collect();
    let ips = r
        .ips
        .into_iter()
        .map(|ip| {
            Ok(result::IpConfig {
                address: ip.address.parse().map_err(|_| bad(ip.address.clone()))?,
                gateway: result::optional_ip(Some(&ip.gateway)).map_err(bad)?,
                interface: usize::try_from(ip.interface).ok(),
            })
        })
        .collect::<Result<_, CniError>>()?;
    let routes = r
        .routes
        .into_iter()
        .map(|rt| {
            Ok(result::Route {
                dst: rt.dst.parse().map_err(|_| bad(rt.dst.clone()))?,
                gw: result::optional_ip(Some(&rt.gw)).map_err(bad)?,
            })
        })
        .collect::<Result<_, CniError>>()?;
    Ok(CniResult {
        interfaces,
        ips,
        routes,
        dns: None,
    })
}

/// Runs one call on a current-thread runtime, within the netconf's timeout.
fn call<T, F>(conf: &NetConf, status_call: bool, f: F) -> Result<T, CniError>
where
    F: AsyncFnOnce(CniApiClient<Channel>) -> Result<tonic::Response<T>, tonic::Status>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(Code::Io, format!("starting a runtime: {e}")))?;
    rt.block_on(async {
        let work = async {
            let client = connect(conf).await?;
            f(client)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| from_status(&s, status_call))
        };
        let r = match tokio::time::timeout(conf.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(CniError::new(
                Code::TryAgainLater,
                format!("the sart agent did not answer within {:?}", conf.timeout),
            )),
        };
        // STATUS: an agent out of reach cannot serve ADD.
        r.map_err(|e| match e.code {
            Code::TryAgainLater if status_call => CniError::new(Code::NotAvailable, e.msg),
            _ => e,
        })
    })
}

fn raw(conf: &NetConf) -> String {
    conf.raw.to_string()
}

impl Agent for GrpcAgent {
    fn add(&self, env: &Env, conf: &NetConf) -> Result<CniResult, CniError> {
        let a = args(env, &raw(conf), conf.prev_result.as_ref());
        to_result(call(conf, false, async |mut c| c.add(a).await)?)
    }

    fn del(&self, env: &Env, conf: &NetConf) -> Result<(), CniError> {
        let a = args(env, &raw(conf), conf.prev_result.as_ref());
        call(conf, false, async |mut c| c.del(a).await).map(|_| ())
    }

    fn check(&self, env: &Env, conf: &NetConf, _prev: &CniResult) -> Result<(), CniError> {
        let a = args(env, &raw(conf), conf.prev_result.as_ref());
        call(conf, false, async |mut c| c.check(a).await).map(|_| ())
    }

    fn gc(&self, conf: &NetConf, valid: &[Attachment]) -> Result<(), CniError> {
        let a = pb::GcArgs {
            conf: raw(conf),
            valid_attachments: valid
                .iter()
                .map(|v| pb::Attachment {
                    container_id: v.container_id.clone(),
                    ifname: v.ifname.clone(),
                })
                .collect(),
        };
        call(conf, false, async |mut c| c.gc(a).await).map(|_| ())
    }

    fn status(&self, conf: &NetConf) -> Result<(), CniError> {
        let a = pb::StatusArgs { conf: raw(conf) };
        call(conf, true, async |mut c| c.status(a).await).map(|_| ())
    }
}
