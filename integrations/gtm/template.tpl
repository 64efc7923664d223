___TERMS_OF_SERVICE___

By creating or modifying this file you agree to Google Tag Manager's Community
Template Gallery Developer Terms of Service available at
https://developers.google.com/tag-manager/gallery-tos (or such other URL as
Google may provide), as modified from time to time.


___INFO___

{
  "type": "TAG",
  "id": "cvt_temp_public_id",
  "version": 1,
  "securityGroups": [],
  "displayName": "adserver store tag",
  "categories": [
    "ADVERTISING",
    "REMARKETING"
  ],
  "brand": {
    "id": "brand_dummy",
    "displayName": "adserver"
  },
  "description": "Tells the retargeting ad server what a shopper does in the store (product views, cart, purchases). Sends the same pixel hits as tag.js; fills SKUs, order id, value and currency from the GA4 ecommerce data layer.",
  "containerContexts": [
    "WEB"
  ]
}


___TEMPLATE_PARAMETERS___

[
  {
    "type": "TEXT",
    "name": "origin",
    "displayName": "Ad server origin",
    "simpleValueType": true,
    "defaultValue": "https://ads.example",
    "alwaysInSummary": true,
    "help": "Where the ad server answers, e.g. https://ads.yourcompany.com (HTTPS, no path). The template may only send pixels there: set the same origin in the template's 'Sends pixels' permission.",
    "valueValidators": [
      {
        "type": "NON_EMPTY"
      },
      {
        "type": "REGEX",
        "args": [
          "^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$"
        ],
        "errorMessage": "An HTTPS origin such as https://ads.yourcompany.com, without a path."
      }
    ]
  },
  {
    "type": "TEXT",
    "name": "advertiser",
    "displayName": "Advertiser id",
    "simpleValueType": true,
    "alwaysInSummary": true,
    "help": "The store's advertiser id on the ad server (lowercase letters, digits, '_' and '-').",
    "valueValidators": [
      {
        "type": "NON_EMPTY"
      },
      {
        "type": "REGEX",
        "args": [
          "^[a-z0-9][a-z0-9_-]{0,63}$"
        ],
        "errorMessage": "1 to 64 lowercase letters, digits, '_' or '-'."
      }
    ]
  },
  {
    "type": "SELECT",
    "name": "event",
    "displayName": "Event",
    "macrosInSelect": true,
    "selectItems": [
      {
        "value": "view_home",
        "displayValue": "view_home: home page"
      },
      {
        "value": "view_list",
        "displayValue": "view_list: category or search results"
      },
      {
        "value": "view_item",
        "displayValue": "view_item: product page"
      },
      {
        "value": "add_to_cart",
        "displayValue": "add_to_cart: product added to the cart"
      },
      {
        "value": "view_cart",
        "displayValue": "view_cart: cart page"
      },
      {
        "value": "purchase",
        "displayValue": "purchase: order confirmation"
      }
    ],
    "simpleValueType": true,
    "alwaysInSummary": true,
    "help": "One of the six store events, or {{Event}} to take the GA4 event name of the data-layer push that fired the tag (GA4's view_item_list counts as view_list).",
    "valueValidators": [
      {
        "type": "NON_EMPTY"
      }
    ]
  },
  {
    "type": "TEXT",
    "name": "sku",
    "displayName": "SKUs",
    "simpleValueType": true,
    "help": "Product ids as in the catalog feed: one id, a comma-separated list, or a variable holding a list. Left empty: the ids of ecommerce.items[].item_id (when reading the data layer). view_item, add_to_cart and purchase need at least one.",
    "valueHint": "D1001 or D1001,D1002"
  },
  {
    "type": "CHECKBOX",
    "name": "useEcommerce",
    "checkboxText": "Fill empty fields from the GA4 ecommerce data layer",
    "simpleValueType": true,
    "defaultValue": true,
    "help": "SKUs from ecommerce.items[].item_id, order id from ecommerce.transaction_id, value and currency from ecommerce.value and ecommerce.currency. A field filled in above wins over the data layer."
  },
  {
    "type": "GROUP",
    "name": "purchaseGroup",
    "displayName": "Purchase",
    "groupStyle": "ZIPPY_OPEN",
    "subParams": [
      {
        "type": "TEXT",
        "name": "order",
        "displayName": "Order id",
        "simpleValueType": true,
        "help": "Needed for purchase: the store's order id (the ad server counts each order once)."
      },
      {
        "type": "TEXT",
        "name": "value",
        "displayName": "Value",
        "simpleValueType": true,
        "help": "The order's value as a decimal number, e.g. 129.90.",
        "valueHint": "129.90"
      },
      {
        "type": "TEXT",
        "name": "currency",
        "displayName": "Currency",
        "simpleValueType": true,
        "help": "ISO 4217 code of the value, e.g. CNY, EUR, USD.",
        "valueHint": "CNY"
      }
    ]
  }
]


___SANDBOXED_JS_FOR_WEB_TEMPLATE___

// Sends the pixel hit tag.js sends for the same event: the same parameters, in the same order,
// encoded and shortened the same way, so the ad server cannot tell the two apart.
const copyFromDataLayer = require('copyFromDataLayer');
const encodeUriComponent = require('encodeUriComponent');
const generateRandom = require('generateRandom');
const getReferrerUrl = require('getReferrerUrl');
const getType = require('getType');
const getUrl = require('getUrl');
const log = require('logToConsole');
const makeString = require('makeString');
const sendPixel = require('sendPixel');

const isBlank = (value) => value == null || value === '' || (getType(value) === 'array' && value.length === 0);

// Percent-encoded UTF-8 of whole characters within max bytes, so the request line stays under the
// server's limit. A lone surrogate is not a character (encodeURIComponent refuses it): left out.
const enc = (value, max) => {
  const units = makeString(value).split('');
  let out = '';
  for (let i = 0; i < units.length; i++) {
    let ch = units[i];
    let whole = true;
    if (ch >= '\uD800' && ch <= '\uDFFF') {
      const next = i + 1 < units.length ? units[i + 1] : '';
      whole = ch <= '\uDBFF' && next >= '\uDC00' && next <= '\uDFFF';
      if (whole) {
        ch = ch + next;
        i++;
      }
    }
    if (whole) {
      const e = encodeUriComponent(ch);
      if (out.length + e.length > max) {
        break;
      }
      out = out + e;
    }
  }
  return out;
};

// Up to 50 ids (a list, or comma-separated) within 1000 bytes, each trimmed and within 300 bytes.
const skus = (value) => {
  const list = getType(value) === 'array' ? value : [value];
  const ids = list.map((id) => (id == null ? '' : makeString(id))).join(',').split(',').slice(0, 50);
  let out = '';
  ids.forEach((id) => {
    const e = enc(id.trim(), 300);
    if (e && out.length + e.length <= 997) {
      out = out + (out ? '%2C' : '') + e;
    }
  });
  return out;
};

// A field filled in on the tag wins over the data layer; a value found in neither is '' (left out of the hit).
const pick = (field, fallback) => {
  const value = isBlank(field) ? fallback : field;
  return value == null ? '' : value;
};

let origin = makeString(data.origin || '');
while (origin.length && origin.charAt(origin.length - 1) === '/') {
  origin = origin.slice(0, origin.length - 1);
}
// GA4 names the list page differently; the other store events share GA4's names.
const event = data.event === 'view_item_list' ? 'view_list' : data.event;

const layer = data.useEcommerce ? copyFromDataLayer('ecommerce') : undefined;
const ecommerce = getType(layer) === 'object' ? layer : {};
const items = getType(ecommerce.items) === 'array' ? ecommerce.items : [];
const itemIds = items
  .filter((item) => getType(item) === 'object' && !isBlank(item.item_id))
  .map((item) => item.item_id);

if (isBlank(event)) {
  log('adserver tag: no event, nothing sent');
  data.gtmOnFailure();
} else {
  const fields = [
    ['a', enc(pick(data.advertiser), 100)],
    ['e', enc(event, 100)],
    ['sku', skus(pick(data.sku, itemIds))],
    ['order', enc(pick(data.order, ecommerce.transaction_id), 100)],
    ['value', enc(pick(data.value, ecommerce.value), 100)],
    ['currency', enc(pick(data.currency, ecommerce.currency), 100)],
    ['url', enc(getUrl() || '', 1000)],
    ['ref', enc(getReferrerUrl() || '', 1000)],
    ['cb', makeString(generateRandom(100000000, 999999999))]
  ];
  const query = fields.filter((f) => f[1]).map((f) => f[0] + '=' + f[1]).join('&');
  const url = origin + '/px.gif?' + query;
  log('adserver tag: sending', url);
  sendPixel(url, data.gtmOnSuccess, data.gtmOnFailure);
}


___WEB_PERMISSIONS___

[
  {
    "instance": {
      "key": {
        "publicId": "send_pixel",
        "versionId": "1"
      },
      "param": [
        {
          "key": "allowedUrls",
          "value": {
            "type": 1,
            "string": "specific"
          }
        },
        {
          "key": "urls",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 1,
                "string": "https://ads.example/"
              }
            ]
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "read_data_layer",
        "versionId": "1"
      },
      "param": [
        {
          "key": "allowedKeys",
          "value": {
            "type": 1,
            "string": "specific"
          }
        },
        {
          "key": "keyPatterns",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 1,
                "string": "ecommerce"
              }
            ]
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "get_url",
        "versionId": "1"
      },
      "param": [
        {
          "key": "urlParts",
          "value": {
            "type": 1,
            "string": "any"
          }
        },
        {
          "key": "queriesAllowed",
          "value": {
            "type": 1,
            "string": "any"
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "get_referrer",
        "versionId": "1"
      },
      "param": [
        {
          "key": "urlParts",
          "value": {
            "type": 1,
            "string": "any"
          }
        },
        {
          "key": "queriesAllowed",
          "value": {
            "type": 1,
            "string": "any"
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "logging",
        "versionId": "1"
      },
      "param": [
        {
          "key": "environments",
          "value": {
            "type": 1,
            "string": "debug"
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  }
]


___TESTS___

scenarios:
- name: view_item sends the pixel tag.js sends
  code: |-
    runCode(mockData);
    assertThat(sent).isEqualTo([
      'https://ads.example/px.gif?a=shop&e=view_item&sku=D1001'
      + '&url=https%3A%2F%2Fstore.example%2Fp%2FD1001%3Fq%3D%E9%9D%92%E7%93%B7'
      + '&ref=https%3A%2F%2Fsearch.example%2F&cb=123456789'
    ]);
    assertApi('gtmOnSuccess').wasCalled();
- name: purchase comes from the GA4 ecommerce data layer
  code: |-
    mock('copyFromDataLayer', (key) => key === 'ecommerce' ? {
      transaction_id: 'O-1001', value: 259.8, currency: 'CNY',
      items: [{item_id: 'D1001', quantity: 2}, {item_name: 'no id'}, {item_id: 'D1002'}]
    } : undefined);
    runCode({origin: 'https://ads.example/', advertiser: 'shop', event: 'purchase', useEcommerce: true});
    assertThat(sent).isEqualTo([
      'https://ads.example/px.gif?a=shop&e=purchase&sku=D1001%2CD1002&order=O-1001&value=259.8&currency=CNY'
      + '&url=https%3A%2F%2Fstore.example%2Fp%2FD1001%3Fq%3D%E9%9D%92%E7%93%B7'
      + '&ref=https%3A%2F%2Fsearch.example%2F&cb=123456789'
    ]);
- name: fields filled in win over the data layer, which can be switched off
  code: |-
    mock('copyFromDataLayer', (key) => ({items: [{item_id: 'D9'}], currency: 'USD', value: 5}));
    runCode({origin: 'https://ads.example', advertiser: 'shop', event: 'add_to_cart', sku: 'D1', currency: 'EUR',
             useEcommerce: true});
    runCode({origin: 'https://ads.example', advertiser: 'shop', event: 'view_cart', useEcommerce: false});
    assertThat(sent[0].indexOf('&sku=D1&value=5&currency=EUR&') > 0).isTrue();
    assertThat(sent[1].indexOf('&sku=') < 0 && sent[1].indexOf('&value=') < 0).isTrue();
- name: SKUs are percent-encoded UTF-8, trimmed, and a lone surrogate is left out
  code: |-
    mockData.sku = [' A&B ', 'C#1,\u9752\u74f7=1', 'E\ud800F', 7];
    runCode(mockData);
    assertThat(sent[0].indexOf('&sku=A%26B%2CC%231%2C%E9%9D%92%E7%93%B7%3D1%2CEF%2C7&') > 0).isTrue();
- name: GA4's view_item_list is the list page
  code: |-
    mockData.event = 'view_item_list';
    mockData.sku = '';
    mock('copyFromDataLayer', (key) => ({items: [{item_id: 'D1'}, {item_id: 'D2'}]}));
    runCode(mockData);
    assertThat(sent[0].indexOf('&e=view_list&sku=D1%2CD2&') > 0).isTrue();
- name: without an event nothing is sent and the tag fails
  code: |-
    mockData.event = '';
    runCode(mockData);
    assertApi('sendPixel').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
setup: |-
  const mockData = {origin: 'https://ads.example', advertiser: 'shop', event: 'view_item', sku: 'D1001',
                    useEcommerce: true};
  const sent = [];
  mock('sendPixel', (url, onSuccess, onFailure) => {
    sent.push(url);
    onSuccess();
  });
  mock('getUrl', () => 'https://store.example/p/D1001?q=\u9752\u74f7');
  mock('getReferrerUrl', () => 'https://search.example/');
  mock('generateRandom', (min, max) => 123456789);
  mock('copyFromDataLayer', (key) => undefined);


___NOTES___

Ships with https://ads.example as the ad server's origin (the field's default and the only URL the
'Sends pixels' permission allows): replace it with your ad server's origin before importing, or
edit both in the template editor. docs/integrations.md explains the fields and the data-layer mapping.


