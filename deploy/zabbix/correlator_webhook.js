// Zabbix webhook media type "AIOps correlator": posts one event as JSON to the correlator (POST /ingest/zabbix).
// Every media-type parameter is sent under its own name except the transport ones (url, token, http_proxy);
// `tags` ({EVENT.TAGSJSON}) is sent as the JSON array it holds. README.md beside this file lists the parameters.
// Plain ES5: Zabbix runs webhooks in Duktape.

var TRANSPORT = ['url', 'token', 'http_proxy'];

function parseTags(text) {
    // Empty, or a macro Zabbix could not resolve: no tags. Anything else is the JSON array Zabbix built.
    if (typeof text !== 'string' || text.charAt(0) !== '[') {
        return [];
    }
    return JSON.parse(text);
}

function buildPayload(params) {
    var payload = {};
    Object.keys(params).forEach(function (name) {
        if (TRANSPORT.indexOf(name) === -1) {
            payload[name] = params[name];
        }
    });
    payload.tags = parseTags(params.tags);
    return payload;
}

function post(params, payload) {
    var request = new HttpRequest();
    request.addHeader('Content-Type: application/json');
    if (params.token) {
        request.addHeader('Authorization: Bearer ' + params.token);
    }
    if (params.http_proxy) {
        request.setProxy(params.http_proxy);
    }
    var response = request.post(params.url, JSON.stringify(payload));
    var status = request.getStatus();
    if (status < 200 || status >= 300) {
        // Throwing marks the alert failed in Zabbix, which retries it (media type "Attempts").
        throw 'HTTP ' + status + ' from ' + params.url + ': ' + String(response).substring(0, 500);
    }
    return response;
}

try {
    var params = JSON.parse(value);
    if (!params.url) {
        throw 'parameter "url" is empty';
    }
    post(params, buildPayload(params));
    return 'OK';
} catch (error) {
    Zabbix.log(3, '[ AIOps correlator webhook ] ' + error);
    throw 'AIOps correlator webhook failed: ' + error;
}
