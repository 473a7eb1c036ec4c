// ScanPay sandbox: a stand-in for WeixinJSBridge / AlipayJSBridge. Real wallets define
// their own; this one is defined only in their user agents and only when nothing else is.
(function () {
  var script = document.currentScript;
  var base = script ? script.src.replace(/\/bridge\.js(\?.*)?$/, '') : '/sandbox';
  function post(path, body, done, failed) {
    fetch(base + path, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify(body) })
      .then(function (r) { return r.json(); })
      .then(done, function () { done(failed); });
  }
  var ua = navigator.userAgent;
  if (/MicroMessenger/.test(ua) && !window.WeixinJSBridge) {
    window.WeixinJSBridge = {
      sandbox: true,
      invoke: function (name, params, cb) {
        if (name !== 'getBrandWCPayRequest') { cb({ err_msg: name + ':fail' }); return; }
        post('/wechat/bridge/pay', params, cb, { err_msg: 'get_brand_wcpay_request:fail' });
      }
    };
    document.dispatchEvent(new Event('WeixinJSBridgeReady'));
  }
  if (/AlipayClient/.test(ua) && !window.AlipayJSBridge) {
    window.AlipayJSBridge = {
      sandbox: true,
      call: function (name, params, cb) {
        if (name !== 'tradePay') { cb({ resultCode: '4000' }); return; }
        post('/alipay/bridge/trade-pay', params, cb, { resultCode: '6002' });
      }
    };
    document.dispatchEvent(new Event('AlipayJSBridgeReady'));
  }
})();
