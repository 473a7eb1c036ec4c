//! The operations of WeChat Pay v3 that ScanPay uses, as a [`PaymentProvider`].

use super::*;

#[async_trait]
impl PaymentProvider for WechatPay {
    fn channel(&self) -> Channel {
        Channel::Wechat
    }

    fn identity(&self) -> crate::providers::ProviderIdentity {
        crate::providers::ProviderIdentity {
            app_id: self.account.appid.clone(),
            // A notification names the sub-merchant whose money it is, in partner mode.
            merchant_account: Some(
                self.sub_mchid
                    .clone()
                    .unwrap_or_else(|| self.account.mchid.clone()),
            ),
        }
    }

    fn for_sub_merchant(
        &self,
        sub: &crate::providers::SubMerchant,
    ) -> Option<Arc<dyn PaymentProvider>> {
        match sub {
            crate::providers::SubMerchant::Wechat { sub_mchid, sub_app } => {
                Some(Arc::new(self.for_sub_merchant(sub_mchid, sub_app.clone())))
            }
            crate::providers::SubMerchant::Alipay(_) => None,
        }
    }

    async fn create_prepay(&self, req: &PrepayRequest) -> Result<Prepay, ProviderError> {
        let mut body = json!({
            "description": req.subject,
            "out_trade_no": req.out_trade_no,
            "time_expire": rfc3339_china(req.expires_at.div_euclid(1000))?,
            "notify_url": req.notify_url,
            "amount": { "total": req.amount.fen(), "currency": "CNY" },
        });
        match &self.sub_mchid {
            Some(sub) => {
                body["sp_appid"] = json!(self.account.appid);
                body["sp_mchid"] = json!(self.account.mchid);
                body["sub_mchid"] = json!(sub);
                if let Some(app) = &self.sub_app {
                    body["sub_appid"] = json!(app.appid);
                }
            }
            None => {
                body["appid"] = json!(self.account.appid);
                body["mchid"] = json!(self.account.mchid);
            }
        }
        let path = format!("{}/{}", self.trades(), self.method_part(req, &mut body)?);
        let bytes = self
            .request(http::Method::POST, &path, Some(body.to_string()))
            .await?;
        Ok(Prepay {
            code_url: inapp::handed_out(req, &bytes)?,
        })
    }

    fn authorize_url(&self, redirect_uri: &str, state: &str) -> Option<String> {
        self.oauth_authorize_url(redirect_uri, state)
    }

    fn signs_in(&self) -> bool {
        self.pay_app().1.is_some()
    }

    async fn payer_of_code(&self, code: &str) -> Result<crate::providers::Payer, ProviderError> {
        self.oauth_openid(code).await
    }

    fn wallet_call(&self, code: &str) -> Result<app::model::checkout::WalletCall, ProviderError> {
        self.jsapi_params(code)
    }

    async fn query(&self, out_trade_no: &OutTradeNo) -> Result<TradeStatus, ProviderError> {
        let path = format!("{}?{}", self.trade_path(out_trade_no)?, self.owner_query());
        let bytes = self.request(http::Method::GET, &path, None).await?;
        let t: wire::Transaction = parse(&bytes)?;
        if t.out_trade_no.as_ref().is_some_and(|o| o != out_trade_no) {
            return Err(ProviderError::Malformed(
                "the response names another out_trade_no".into(),
            ));
        }
        Ok(TradeStatus {
            state: wire::trade_state(&t.trade_state),
            amount: t
                .amount
                .and_then(|a| a.total)
                .and_then(|f| Amount::from_fen(f).ok()),
            provider_state: t.trade_state,
            provider_trade_no: t.transaction_id,
        })
    }

    async fn close(&self, out_trade_no: &OutTradeNo) -> Result<(), ProviderError> {
        let path = format!("{}/close", self.trade_path(out_trade_no)?);
        let body = match &self.sub_mchid {
            Some(sub) => json!({ "sp_mchid": self.account.mchid, "sub_mchid": sub }),
            None => json!({ "mchid": self.account.mchid }),
        }
        .to_string();
        self.request(http::Method::POST, &path, Some(body))
            .await
            .map(|_| ())
    }

    async fn refund(&self, req: &RefundRequest) -> Result<RefundStatus, ProviderError> {
        let mut body = json!({
            "out_trade_no": req.out_trade_no,
            "out_refund_no": req.out_refund_no,
            "amount": { "refund": req.refund.fen(), "total": req.total.fen(), "currency": "CNY" },
        });
        if let Some(reason) = &req.reason {
            body["reason"] = json!(reason);
        }
        if let Some(url) = &req.notify_url {
            body["notify_url"] = json!(url);
        }
        if let Some(sub) = &self.sub_mchid {
            body["sub_mchid"] = json!(sub);
        }
        let bytes = self
            .request(
                http::Method::POST,
                "/v3/refund/domestic/refunds",
                Some(body.to_string()),
            )
            .await?;
        refund_status(&bytes, &req.out_refund_no)
    }

    async fn refund_query(
        &self,
        _out_trade_no: &OutTradeNo,
        out_refund_no: &str,
    ) -> Result<RefundStatus, ProviderError> {
        let mut path = format!("/v3/refund/domestic/refunds/{}", url_safe(out_refund_no)?);
        if let Some(sub) = &self.sub_mchid {
            path.push_str(&format!("?sub_mchid={sub}"));
        }
        match self.request(http::Method::GET, &path, None).await {
            Ok(bytes) => refund_status(&bytes, out_refund_no),
            Err(ProviderError::Business { code, .. }) if code == "RESOURCE_NOT_EXISTS" => {
                Ok(RefundStatus {
                    state: RefundState::NotFound,
                    provider_state: code,
                    provider_refund_no: None,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn apply_abnormal_refund(
        &self,
        provider_refund_no: &str,
        out_refund_no: &str,
    ) -> Result<RefundStatus, ProviderError> {
        let path = format!(
            "/v3/refund/domestic/refunds/{}/apply-abnormal-refund",
            url_safe(provider_refund_no)?
        );
        let mut body = json!({ "out_refund_no": out_refund_no, "type": "MERCHANT_BANK_CARD" });
        if let Some(sub) = &self.sub_mchid {
            body["sub_mchid"] = json!(sub);
        }
        let bytes = self
            .request(http::Method::POST, &path, Some(body.to_string()))
            .await?;
        refund_status(&bytes, out_refund_no)
    }

    fn verify_notification(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<VerifiedNotification, NotificationError> {
        let guard = self.check_signature(headers, body).map_err(|p| match p {
            SignatureProblem::Missing => {
                NotificationError::MissingField("Wechatpay-Signature headers")
            }
            SignatureProblem::Probe => NotificationError::ProbeSignature,
            SignatureProblem::Serial(got) => NotificationError::UnknownSerial {
                got,
                expected: self.account.wechat_key_id.clone(),
            },
            SignatureProblem::Stale(skew_secs) => NotificationError::StaleTimestamp { skew_secs },
            SignatureProblem::Bad => NotificationError::BadSignature,
        })?;
        let envelope: wire::Notification = serde_json::from_slice(body)
            .map_err(|e| NotificationError::Malformed(e.to_string()))?;
        if envelope.resource.algorithm != "AEAD_AES_256_GCM" {
            return Err(NotificationError::Malformed(format!(
                "algorithm {}",
                envelope.resource.algorithm
            )));
        }
        let plain = aes_gcm_decrypt(
            self.apiv3_key.expose(),
            envelope.resource.nonce.as_bytes(),
            envelope.resource.associated_data.as_bytes(),
            &envelope.resource.ciphertext,
        )
        .map_err(|_| NotificationError::Decrypt)?;
        if envelope.event_type.starts_with("REFUND.") {
            return self.refund_notification(envelope.id, &plain, guard);
        }
        let t: wire::Transaction = serde_json::from_slice(&plain)
            .map_err(|e| NotificationError::Malformed(format!("resource: {e}")))?;
        let state = wire::trade_state(&t.trade_state);
        if state == TradeState::Paid && t.transaction_id.is_none() {
            return Err(NotificationError::MissingField("transaction_id"));
        }
        // Partner mode names the service provider (us) and the sub-merchant instead.
        let (app_id, merchant_account) = match (t.sp_mchid, t.sub_mchid) {
            (Some(sp), Some(sub)) => {
                if sp != self.account.mchid {
                    return Err(NotificationError::Malformed(format!(
                        "sp_mchid {sp} is not ours"
                    )));
                }
                (
                    t.sp_appid
                        .ok_or(NotificationError::MissingField("sp_appid"))?,
                    sub,
                )
            }
            _ => (
                t.appid.ok_or(NotificationError::MissingField("appid"))?,
                t.mchid.ok_or(NotificationError::MissingField("mchid"))?,
            ),
        };
        let amount = t.amount.ok_or(NotificationError::MissingField("amount"))?;
        let total = amount
            .total
            .ok_or(NotificationError::MissingField("amount.total"))?;
        Ok(VerifiedNotification {
            channel: Channel::Wechat,
            notification_id: envelope.id,
            out_trade_no: t
                .out_trade_no
                .ok_or(NotificationError::MissingField("out_trade_no"))?,
            provider_trade_no: t.transaction_id,
            state,
            provider_state: t.trade_state,
            amount: Amount::from_fen(total)
                .map_err(|_| NotificationError::BadAmount(total.to_string()))?,
            currency: amount
                .currency
                .ok_or(NotificationError::MissingField("amount.currency"))?,
            app_id,
            merchant_account,
            replay_guard: Some(guard),
            kind: NotificationKind::Payment,
        })
    }

    fn acceptance_reply(&self) -> NotifyReply {
        NotifyReply {
            status: 204,
            content_type: None,
            body: Vec::new(),
        }
    }

    fn refusal_reply(&self, status: u16, message: &str) -> NotifyReply {
        NotifyReply {
            status,
            content_type: Some("application/json"),
            body: json!({ "code": "FAIL", "message": message })
                .to_string()
                .into_bytes(),
        }
    }

    /// The resource is authenticated by AES-GCM under our APIv3 key, so a body that decrypts
    /// was made by someone holding that key; still only used to file the refusal.
    fn claimed_trade(&self, body: &[u8]) -> Option<String> {
        let envelope: wire::Notification = serde_json::from_slice(body).ok()?;
        let plain = aes_gcm_decrypt(
            self.apiv3_key.expose(),
            envelope.resource.nonce.as_bytes(),
            envelope.resource.associated_data.as_bytes(),
            &envelope.resource.ciphertext,
        )
        .ok()?;
        serde_json::from_slice::<wire::Transaction>(&plain)
            .ok()?
            .out_trade_no
            .map(OutTradeNo::into_string)
    }
}
