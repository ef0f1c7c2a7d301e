//! The berth service: configuration, authentication, the HTTP edge and start-up.
//! This is the only crate that knows actix-web.

pub mod auth;
pub mod config;
pub mod error;
pub mod routes;
pub mod serve;
pub mod telemetry;

use actix::Addr;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App};
use berth_actors::Registry;
use futures::FutureExt;
use tracing::Instrument;

/// What every route can reach.
#[derive(Clone)]
pub struct AppState {
    /// The registry actor: the only door to backends.
    pub registry: Addr<Registry>,
}

/// The application: routes under `/api/v1`, a span per request, JSON 404s.
pub fn create_app(
    state: AppState,
    jwt: auth::JwtKey,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(state))
        .app_data(web::Data::new(jwt))
        .wrap_fn(|req, srv| {
            let span = tracing::info_span!(
                "http.request",
                method = %req.method(),
                path = %req.path(),
                status = tracing::field::Empty,
            );
            srv.call(req)
                .map(|result| {
                    if let Ok(response) = &result {
                        tracing::Span::current().record("status", response.status().as_u16());
                    }
                    result
                })
                .instrument(span)
        })
        .service(
            web::scope("/api/v1")
                .service(routes::health::health)
                .service(routes::health::actors)
                .service(routes::backends::list)
                .service(routes::backends::test)
                .service(routes::backends::get)
                .service(routes::backends::connect)
                .service(routes::backends::update)
                .service(routes::backends::disconnect)
                .service(routes::mounts::list)
                .service(routes::mounts::get)
                .service(routes::mounts::create)
                .service(routes::mounts::update)
                .service(routes::mounts::remove),
        )
        .default_service(web::to(routes::not_found))
}
