//! The server's side of the UI seam: implements `app::services::AppServices` over the
//! process's database, payments and live hub, for server functions to use.

use crate::checkout::{self, Checkout};
use crate::ids::OrderId;
use crate::infra::db::Db;
use crate::merchants::MerchantId;
use app::api::{AggregateAnswer, AggregateRequest, CheckoutView, Choice, LivePing, ShopCodeView};
use app::merchant::{BoardData, BoardFilter, BoardUser, Change, OrderDetail, SignedIn};
use app::money::Amount;
use app::services::{AppServices, ServiceError};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::FutureExt;

pub struct Services {
    checkout: Checkout,
    cluster: crate::cluster::Cluster,
    webhooks: crate::webhooks::Webhooks,
    demo: bool,
    posture: crate::config::Posture,
    default_expiry_secs: i64,
}

impl Services {
    pub fn new(
        checkout: Checkout,
        cluster: crate::cluster::Cluster,
        webhooks: crate::webhooks::Webhooks,
        demo: bool,
        posture: crate::config::Posture,
        default_expiry_secs: i64,
    ) -> Self {
        Self {
            checkout,
            cluster,
            webhooks,
            demo,
            posture,
            default_expiry_secs,
        }
    }
}

impl Services {
    fn db(&self) -> &Db {
        self.checkout.payments.db()
    }
}

impl AppServices for Services {
    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    fn database_engine(&self) -> &'static str {
        self.db().engine().display_name()
    }

    fn ping_database(&self) -> BoxFuture<'_, Result<(), String>> {
        async move { self.db().ping().await.map_err(|e| e.to_string()) }.boxed()
    }

    fn checkout(
        &self,
        order_id: String,
        choice: Option<Choice>,
    ) -> BoxFuture<'_, Result<Option<CheckoutView>, ServiceError>> {
        async move {
            // An id that cannot be one of ours is an order that does not exist.
            let Some(order_id) = OrderId::parse(&order_id) else {
                return Ok(None);
            };
            self.checkout.view(&order_id, choice).await
        }
        .boxed()
    }

    fn watch(&self, order_id: String) -> BoxStream<'static, LivePing> {
        self.checkout.payments.live().watch(order_id)
    }

    fn renew(&self, order_id: String) -> BoxFuture<'_, Result<String, ServiceError>> {
        async move {
            let Some(order_id) = OrderId::parse(&order_id) else {
                return Err(ServiceError::Invalid(
                    "This payment cannot be renewed.".into(),
                ));
            };
            self.checkout.renew(&order_id).await
        }
        .boxed()
    }

    fn demo_enabled(&self) -> bool {
        self.demo
    }

    fn no_real_money(&self) -> bool {
        self.posture == crate::config::Posture::Demo
    }

    fn create_demo_order(
        &self,
        amount: Amount,
        subject: String,
        expires_in_secs: Option<i64>,
    ) -> BoxFuture<'_, Result<String, ServiceError>> {
        async move {
            if !self.demo {
                return Err(ServiceError::Invalid(
                    "The demo shop is switched off on this server.".into(),
                ));
            }
            let expires = expires_in_secs.unwrap_or(self.default_expiry_secs);
            checkout::create_counter_order(
                &self.checkout.payments,
                &MerchantId::demo(),
                amount,
                subject,
                expires,
            )
            .await
        }
        .boxed()
    }

    fn shop_code(&self, code: String) -> BoxFuture<'_, Result<Option<ShopCodeView>, ServiceError>> {
        async move { self.checkout.shop_code(&code).await }.boxed()
    }

    fn shop_pay(
        &self,
        code: String,
        amount: String,
        note: String,
    ) -> BoxFuture<'_, Result<String, ServiceError>> {
        async move { self.checkout.shop_pay(&code, &amount, &note).await }.boxed()
    }

    fn aggregate(
        &self,
        request: AggregateRequest,
    ) -> BoxFuture<'_, Result<AggregateAnswer, ServiceError>> {
        async move { self.checkout.aggregate(request).await }.boxed()
    }

    fn session(&self, token: String) -> BoxFuture<'_, Result<Option<SignedIn>, ServiceError>> {
        async move {
            let user = crate::accounts::session(self.db(), &token)
                .await
                .map_err(crate::service_error::fault)?;
            Ok(user.map(|u| SignedIn {
                merchant_id: u.merchant_id.into_string(),
                user: BoardUser {
                    email: u.email,
                    merchant_name: u.merchant_name,
                    csrf: u.csrf,
                    admin: u.admin,
                },
            }))
        }
        .boxed()
    }

    fn board(
        &self,
        merchant_id: String,
        filter: BoardFilter,
        after: Option<String>,
    ) -> BoxFuture<'_, Result<BoardData, ServiceError>> {
        async move {
            crate::board::page(self.db(), &MerchantId::from(merchant_id), &filter, after).await
        }
        .boxed()
    }

    fn board_order(
        &self,
        merchant_id: String,
        order_id: String,
    ) -> BoxFuture<'_, Result<Option<OrderDetail>, ServiceError>> {
        async move {
            let Some(order_id) = OrderId::parse(&order_id) else {
                return Ok(None);
            };
            crate::board::detail(
                &self.checkout.payments,
                &self.checkout.public_url,
                &MerchantId::from(merchant_id),
                &order_id,
            )
            .await
        }
        .boxed()
    }

    fn board_action(
        &self,
        merchant_id: String,
        action: Change,
    ) -> BoxFuture<'_, Result<String, ServiceError>> {
        async move {
            crate::board::change(
                &self.checkout.payments,
                &self.webhooks,
                &MerchantId::from(merchant_id),
                self.default_expiry_secs,
                action,
            )
            .await
        }
        .boxed()
    }

    fn watch_merchant(&self, merchant_id: String) -> BoxStream<'static, LivePing> {
        self.checkout.payments.live().watch_merchant(merchant_id)
    }

    fn developers(
        &self,
        merchant_id: String,
    ) -> BoxFuture<'_, Result<app::merchant::DevelopersView, ServiceError>> {
        async move {
            crate::board::developers(
                self.db(),
                &MerchantId::from(merchant_id),
                &self.checkout.public_url,
            )
            .await
        }
        .boxed()
    }

    fn setting(
        &self,
        merchant_id: String,
        change: app::merchant::Setting,
    ) -> BoxFuture<'_, Result<app::merchant::SettingDone, ServiceError>> {
        async move {
            crate::board::setting(
                &self.checkout.payments,
                &self.webhooks,
                &MerchantId::from(merchant_id),
                change,
            )
            .await
        }
        .boxed()
    }

    fn cluster(&self) -> BoxFuture<'_, Result<app::merchant::ClusterView, ServiceError>> {
        async move {
            const WINDOW: std::time::Duration = std::time::Duration::from_secs(300);
            let c = &self.cluster;
            let (nodes, flows) = crate::cluster::overview(self.db(), c.settings().ttl, WINDOW)
                .await
                .map_err(crate::service_error::fault)?;
            let now = crate::infra::clock::now_ms();
            let ppm = |x: f64| (x.clamp(0.0, 1.0) * 1e6) as u64;
            Ok(app::merchant::ClusterView {
                this_node: c.node_id().to_string(),
                forwarding: c.forwarding(),
                window_secs: WINDOW.as_secs() as i64,
                nodes: nodes
                    .into_iter()
                    .map(|n| app::merchant::NodeRow {
                        flows: flows.get(&n.id).copied().unwrap_or(0),
                        heartbeat_age_ms: now - n.heartbeat_at,
                        state: n.state,
                        in_flight: n.in_flight,
                        latency_us: n.latency.as_micros() as u64,
                        error_ppm: ppm(n.error_rate),
                        cpu_ppm: ppm(n.cpu),
                        pool_ppm: ppm(n.pool),
                        url: n.url,
                        id: n.id,
                    })
                    .collect(),
            })
        }
        .boxed()
    }
}
