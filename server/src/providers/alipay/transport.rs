//! The gateway's transport: a signed call posted (the business parameters in the form body,
//! the common ones in the query), and the verification of its synchronous answer.

use super::*;

impl Alipay {
    /// Posts signed `params` (the business ones in the form body, the rest in the query) and
    /// returns the verified raw `*_response` object text of a `10000` reply.
    pub(super) async fn post(
        &self,
        method: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<String, ProviderError> {
        const COMMON: &[&str] = &[
            "app_id",
            "method",
            "format",
            "charset",
            "sign_type",
            "sign",
            "timestamp",
            "version",
            "notify_url",
            "app_auth_token",
        ];
        let common = |k: &String| COMMON.contains(&k.as_str());
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().filter(|(k, _)| common(k)))
            .finish();
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().filter(|(k, _)| !common(k)))
            .finish();
        let sep = if self.account.gateway.contains('?') {
            '&'
        } else {
            '?'
        };
        let response = self
            .http
            .post(format!("{}{sep}{query}", self.account.gateway))
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(e, self.timeout))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(e, self.timeout))?;
        if !(200..300).contains(&status) {
            return Err(ProviderError::Status { status });
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ProviderError::Malformed("not UTF-8".into()))?;
        self.verify_response(method, text)
    }

    /// Verifies a synchronous response: the signature over the raw `*_response` (or
    /// `error_response`) substring, then the business code. Returns the object text.
    pub fn verify_response(&self, method: &str, text: &str) -> Result<String, ProviderError> {
        let doc: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ProviderError::Malformed(format!("not JSON: {e}")))?;
        let key = format!("{}_response", method.replace('.', "_"));
        let key = if doc.get(&key).is_some() {
            key
        } else {
            "error_response".to_string()
        };
        let raw = wire::raw_object(text, &key)
            .ok_or_else(|| ProviderError::Malformed(format!("no {key} object")))?;
        let sign = doc
            .get("sign")
            .and_then(|s| s.as_str())
            .ok_or(ProviderError::Unsigned)?;
        if !self.verifier.verify_base64(raw.as_bytes(), sign) {
            return Err(ProviderError::BadSignature);
        }
        let common: wire::Common = serde_json::from_str(raw)
            .map_err(|e| ProviderError::Malformed(format!("{key}: {e}")))?;
        if common.code != "10000" {
            return Err(ProviderError::Business {
                code: common.code,
                message: common.sub_msg.unwrap_or(common.msg),
                sub_code: common.sub_code,
            });
        }
        Ok(raw.to_string())
    }
}
