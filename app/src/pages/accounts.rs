//! The developers page's "Payment accounts" card: the merchant's own Alipay / WeChat Pay
//! accounts (ids only: keys are never shown again after saving), a form to enter one (its
//! own keys, or as a sub-merchant of the operator's service-provider account), and removal.
//! The server checks an account with a signed call to the provider before it saves it.

use crate::channel::Channel;
use crate::clock::beijing;
use crate::i18n::{use_lang, T};
use crate::merchant::{AccountForm, AccountRow, ChangeSetting, Setting};
use leptos::prelude::*;

/// One field of the form: its name (the command line's flag without dashes), its labels, and
/// whether it holds a key (a text area, cleared after sending; never echoed back).
struct Field {
    name: &'static str,
    en: &'static str,
    zh: &'static str,
    secret: bool,
    optional: bool,
}

const fn field(name: &'static str, en: &'static str, zh: &'static str) -> Field {
    Field {
        name,
        en,
        zh,
        secret: false,
        optional: false,
    }
}

const fn secret(name: &'static str, en: &'static str, zh: &'static str) -> Field {
    Field {
        name,
        en,
        zh,
        secret: true,
        optional: false,
    }
}

const fn optional(name: &'static str, en: &'static str, zh: &'static str) -> Field {
    Field {
        name,
        en,
        zh,
        secret: false,
        optional: true,
    }
}

/// The fields of an account at `channel`, its own or as a sub-merchant.
fn fields_of(channel: Channel, sub_merchant: bool) -> &'static [Field] {
    const ALIPAY: &[Field] = &[
        field("app_id", "App ID", "应用 APPID"),
        field("seller_id", "Seller ID (2088…)", "商户 PID（2088…）"),
        secret("private_key", "App private key (PEM)", "应用私钥（PEM）"),
        secret("public_key", "Alipay public key (PEM)", "支付宝公钥（PEM）"),
        optional("gateway", "Gateway (optional)", "网关（可选）"),
    ];
    const ALIPAY_SUB: &[Field] = &[
        field(
            "auth_app_id",
            "Your app ID (authorised)",
            "授权的应用 APPID",
        ),
        field("seller_id", "Seller ID (2088…)", "商户 PID（2088…）"),
        secret("app_auth_token", "app_auth_token", "app_auth_token"),
    ];
    const WECHAT: &[Field] = &[
        field("mchid", "Merchant number (mchid)", "商户号"),
        field("appid", "AppID", "AppID"),
        field("cert_serial", "API certificate serial", "API 证书序列号"),
        field(
            "public_key_id",
            "WeChat Pay public key ID",
            "微信支付公钥 ID",
        ),
        secret("private_key", "API private key (PEM)", "API 私钥（PEM）"),
        secret(
            "public_key",
            "WeChat Pay public key (PEM)",
            "微信支付公钥（PEM）",
        ),
        secret("apiv3_key", "APIv3 key", "APIv3 密钥"),
        Field {
            optional: true,
            ..secret(
                "app_secret",
                "Official account AppSecret (optional: payment inside WeChat)",
                "公众号 AppSecret（可选：用于微信内支付）",
            )
        },
        optional("api_base", "API base (optional)", "接口地址（可选）"),
    ];
    const WECHAT_SUB: &[Field] = &[
        field("sub_mchid", "Sub-merchant number", "特约商户号"),
        optional(
            "sub_appid",
            "Your official account's AppID (optional: customers inside WeChat pay as its users)",
            "您的公众号 AppID（可选：微信内的顾客以该公众号用户身份付款）",
        ),
        Field {
            optional: true,
            ..secret(
                "app_secret",
                "That official account's AppSecret (with its AppID)",
                "该公众号的 AppSecret（与 AppID 一起填写）",
            )
        },
    ];
    match (channel, sub_merchant) {
        (Channel::Alipay, false) => ALIPAY,
        (Channel::Alipay, true) => ALIPAY_SUB,
        (Channel::Wechat, false) => WECHAT,
        (Channel::Wechat, true) => WECHAT_SUB,
    }
}

/// Every field name any form may hold.
const NAMES: &[&str] = &[
    "app_id",
    "seller_id",
    "private_key",
    "public_key",
    "gateway",
    "auth_app_id",
    "app_auth_token",
    "mchid",
    "appid",
    "cert_serial",
    "public_key_id",
    "apiv3_key",
    "app_secret",
    "api_base",
    "sub_mchid",
    "sub_appid",
];

#[component]
pub fn ProviderAccounts<F>(
    accounts: Vec<AccountRow>,
    send: F,
    act: ServerAction<ChangeSetting>,
) -> impl IntoView
where
    F: Fn(Setting) + Clone + Send + Sync + 'static,
{
    let lang = use_lang();
    let rows = accounts
        .into_iter()
        .map(|a| {
            let send = send.clone();
            let channel = a.channel;
            let ids = a
                .ids
                .into_iter()
                .map(|(k, v)| view! { <div><span class="muted">{k}": "</span><code>{v}</code></div> })
                .collect_view();
            view! {
                <tr data-testid="account-row" data-channel=channel.as_str()>
                    <td>{channel.to_string()}</td>
                    <td>
                        {if a.sub_merchant {
                            view! { <T en="sub-merchant of the operator" zh="服务商下的特约商户"/> }.into_any()
                        } else {
                            view! { <T en="own account" zh="自有账户"/> }.into_any()
                        }}
                    </td>
                    <td>{ids}</td>
                    <td>{a.checked_at.map(beijing)}</td>
                    <td>
                        <button type="button" data-testid="remove-account" disabled=move || act.pending().get() on:click=move |_| {
                            send(Setting::RemoveAccount { channel });
                        }>
                            <T en="Remove" zh="移除"/>
                        </button>
                    </td>
                </tr>
            }
        })
        .collect_view();
    let channel = RwSignal::new(Channel::Alipay);
    let sub_merchant = RwSignal::new(false);
    let values: Vec<(&'static str, RwSignal<String>)> = NAMES
        .iter()
        .map(|n| (*n, RwSignal::new(String::new())))
        .collect();
    let value_of = {
        let values = values.clone();
        move |name: &str| {
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| *s)
                .expect("every field has a signal")
        }
    };
    let inputs = {
        let value_of = value_of.clone();
        move || {
            fields_of(channel.get(), sub_merchant.get())
                .iter()
                .map(|f| {
                    let value = value_of(f.name);
                    let label = move || lang.get().pick(f.en, f.zh);
                    let input = if f.secret && f.name.ends_with("_key") && f.name != "apiv3_key" {
                        view! {
                            <textarea rows="4" cols="48" required autocomplete="off" spellcheck="false" data-testid=format!("account-{}", f.name)
                                prop:value=move || value.get() on:input=move |ev| value.set(event_target_value(&ev))></textarea>
                        }
                        .into_any()
                    } else {
                        view! {
                            <input type=if f.secret { "password" } else { "text" } required=!f.optional autocomplete="off" size="40" data-testid=format!("account-{}", f.name)
                                prop:value=move || value.get() on:input=move |ev| value.set(event_target_value(&ev))/>
                        }
                        .into_any()
                    };
                    view! { <label class="stacked"><span>{label}</span>{input}</label> }
                })
                .collect_view()
        }
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (c, sub) = (channel.get_untracked(), sub_merchant.get_untracked());
        let fields = fields_of(c, sub)
            .iter()
            .map(|f| (f.name.to_string(), value_of(f.name).get_untracked()))
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        send(Setting::SetAccount(AccountForm { channel: c, fields }));
        // Keys leave the page once: the fields are emptied as soon as they are sent.
        for f in fields_of(c, sub).iter().filter(|f| f.secret) {
            value_of(f.name).set(String::new());
        }
    };
    view! {
        <section class="card" data-testid="provider-accounts">
            <h2><T en="Payment accounts" zh="收款账户"/></h2>
            <p class="muted">
                <T en="Your customers' money goes straight to your own Alipay and WeChat Pay accounts. Without one here, a wallet's payments go to the operator's account. An account is checked with a signed call to the provider before it is saved, and its keys are sealed and never shown again."
                   zh="顾客的钱直接进入您自己的支付宝、微信支付账户。未设置时，该钱包的付款进入平台运营方的账户。保存前会用签名请求向支付机构验证账户；密钥加密保存，之后不再显示。"/>
            </p>
            <super::CardTable label=("Payment accounts", "收款账户") heads=ACCOUNT_HEADS>{rows}</super::CardTable>
            <form on:submit=submit data-testid="account-form">
                <label>
                    <span><T en="Wallet" zh="钱包"/></span>
                    <select data-testid="account-channel" on:change=move |ev| {
                        channel.set(if event_target_value(&ev) == "wechat" { Channel::Wechat } else { Channel::Alipay });
                    }>
                        <option value="alipay" selected=move || channel.get() == Channel::Alipay>{move || Channel::Alipay.to_string()}</option>
                        <option value="wechat" selected=move || channel.get() == Channel::Wechat>{move || Channel::Wechat.to_string()}</option>
                    </select>
                </label>
                <label>
                    <input type="checkbox" data-testid="account-sub-merchant" prop:checked=move || sub_merchant.get()
                        on:change=move |ev| sub_merchant.set(event_target_checked(&ev))/>
                    <span><T en=" I am a sub-merchant of the operator's service-provider account" zh=" 我是平台服务商的特约商户（子商户）"/></span>
                </label>
                {inputs}
                <button type="submit" class="primary" data-testid="save-account" disabled=move || act.pending().get()>
                    <T en="Check and save" zh="验证并保存"/>
                </button>
            </form>
        </section>
    }
}

/// The payment accounts' columns.
const ACCOUNT_HEADS: &[(&str, &str)] = &[
    ("Wallet", "钱包"),
    ("Kind", "类型"),
    ("Account", "账户"),
    ("Checked", "验证时间"),
    ("", ""),
];
