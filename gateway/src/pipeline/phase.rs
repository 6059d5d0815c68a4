//! The phase trait every policy implements, and how a list of policies runs.
//!
//! A policy is a type with two hooks over the request context: `request` runs after
//! routing, in list order, and either lets the request go on or answers it; `response`
//! runs on every answer of a routed request (gateway errors too), in reverse list order.
//! The list is a tuple type (`super::Policies`), so the calls are static: no boxing, no
//! allocation per request, and a policy that needs no hook costs nothing.

use actix_web::HttpResponse;

use super::{Ctx, Pipeline};
use crate::error::GatewayError;

/// What a request phase decided.
pub enum Flow {
    /// Go on with the next phase.
    Continue,
    /// Answer with this response (the remaining request phases and the upstream are
    /// skipped; the response phases, decoration and the log still run).
    Respond(HttpResponse),
}

/// One policy of the pipeline (SPEC §4 steps 3–5 and the wave-2 policies). Policies are
/// stateless types: node-wide state lives in `Pipeline`, per-service settings on the
/// route (`cx.route`).
pub(crate) trait Policy {
    /// Inspects (and may change) the routed request; an error answers it as JSON.
    async fn request(_node: &Pipeline, _cx: &mut Ctx<'_>) -> Result<Flow, GatewayError> {
        Ok(Flow::Continue)
    }

    /// Adds to or changes the answer of a routed request.
    fn response(_node: &Pipeline, _cx: &Ctx<'_>, _res: &mut HttpResponse) {}
}

/// A list of policies is a policy: request hooks in order (the first answer wins),
/// response hooks in reverse order.
macro_rules! policy_list {
    ($($p:ident)+; $($r:ident)+) => {
        impl<$($p: Policy),+> Policy for ($($p,)+) {
            async fn request(node: &Pipeline, cx: &mut Ctx<'_>) -> Result<Flow, GatewayError> {
                $(
                    if let Flow::Respond(res) = $p::request(node, cx).await? {
                        return Ok(Flow::Respond(res));
                    }
                )+
                Ok(Flow::Continue)
            }

            fn response(node: &Pipeline, cx: &Ctx<'_>, res: &mut HttpResponse) {
                $($r::response(node, cx, res);)+
            }
        }
    };
}

policy_list!(A; A);
policy_list!(A B; B A);
policy_list!(A B C; C B A);
policy_list!(A B C D; D C B A);
policy_list!(A B C D E; E D C B A);
policy_list!(A B C D E F; F E D C B A);
policy_list!(A B C D E F G; G F E D C B A);
policy_list!(A B C D E F G H; H G F E D C B A);
policy_list!(A B C D E F G H I; I H G F E D C B A);
policy_list!(A B C D E F G H I J; J I H G F E D C B A);
policy_list!(A B C D E F G H I J K; K J I H G F E D C B A);
policy_list!(A B C D E F G H I J K L; L K J I H G F E D C B A);
