import FastCGI
import Posix

/// Every preset, one row per sender, as each sender documents its scheme.
/// docs/schemes.md's table is checked against this list (SchemeTableTests).
extension Scheme {
    package static let catalog: [Scheme] = [
        // MARK: body HMAC, hex or base64, one signature per header
        Scheme(
            name: "github", signatureHeader: HeaderName("X-Hub-Signature-256"), encoding: .hex, prefix: "sha256=",
            idHeader: HeaderName("X-GitHub-Delivery"), eventHeader: HeaderName("X-GitHub-Event"),
            documentation: "https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries"),
        // GitHub's legacy SHA-1 header, still sent beside the SHA-256 one.
        Scheme(
            name: "github-sha1", signatureHeader: HeaderName("X-Hub-Signature"), algorithm: .sha1, encoding: .hex,
            prefix: "sha1=", idHeader: HeaderName("X-GitHub-Delivery"), eventHeader: HeaderName("X-GitHub-Event"),
            documentation: "https://docs.github.com/en/webhooks/webhook-events-and-payloads#delivery-headers"),
        Scheme(
            name: "bitbucket", signatureHeader: HeaderName("X-Hub-Signature"), encoding: .hex, prefix: "sha256=",
            idHeader: HeaderName("X-Request-UUID"), eventHeader: HeaderName("X-Event-Key"),
            documentation: "https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/"),
        Scheme(
            name: "gitea", signatureHeader: HeaderName("X-Gitea-Signature"), encoding: .hex,
            idHeader: HeaderName("X-Gitea-Delivery"), eventHeader: HeaderName("X-Gitea-Event"),
            documentation: "https://docs.gitea.com/usage/webhooks"),
        Scheme(
            name: "forgejo", signatureHeader: HeaderName("X-Forgejo-Signature"), encoding: .hex,
            idHeader: HeaderName("X-Forgejo-Delivery"), eventHeader: HeaderName("X-Forgejo-Event"),
            documentation: "https://forgejo.org/docs/latest/user/webhooks/"),
        // Meta (Facebook, Instagram, WhatsApp): the app secret signs the body.
        Scheme(
            name: "meta", signatureHeader: HeaderName("X-Hub-Signature-256"), encoding: .hex, prefix: "sha256=",
            documentation: "https://developers.facebook.com/docs/graph-api/webhooks/getting-started",
            handshake: .metaSubscribe),
        Scheme(
            name: "intercom", signatureHeader: HeaderName("X-Hub-Signature"), algorithm: .sha1, encoding: .hex,
            prefix: "sha1=",
            documentation: "https://developers.intercom.com/docs/references/webhooks/webhook-models"),
        Scheme(
            name: "lemonsqueezy", signatureHeader: HeaderName("X-Signature"), encoding: .hex,
            eventHeader: HeaderName("X-Event-Name"),
            documentation: "https://docs.lemonsqueezy.com/help/webhooks/signing-requests"),
        Scheme(
            name: "typeform", signatureHeader: HeaderName("Typeform-Signature"), encoding: .base64, prefix: "sha256=",
            documentation: "https://www.typeform.com/developers/webhooks/secure-your-webhooks/"),
        Scheme(
            name: "vercel", signatureHeader: HeaderName("X-Vercel-Signature"), algorithm: .sha1, encoding: .hex,
            documentation: "https://vercel.com/docs/webhooks/webhooks-api#securing-webhooks"),
        // Coinbase Commerce.
        Scheme(
            name: "coinbase", signatureHeader: HeaderName("X-CC-Webhook-Signature"), encoding: .hex,
            documentation: "https://docs.cdp.coinbase.com/commerce/docs/webhooks-security"),
        Scheme(
            name: "dropbox", signatureHeader: HeaderName("X-Dropbox-Signature"), encoding: .hex,
            documentation: "https://www.dropbox.com/developers/reference/webhooks", handshake: .dropboxChallenge),
        Scheme(
            name: "sentry", signatureHeader: HeaderName("Sentry-Hook-Signature"), encoding: .hex,
            idHeader: HeaderName("Request-ID"), eventHeader: HeaderName("Sentry-Hook-Resource"),
            documentation: "https://docs.sentry.io/integrations/integration-platform/webhooks/"),
        // DocuSign Connect: X-DocuSign-Signature-1 carries the first key's HMAC.
        Scheme(
            name: "docusign", signatureHeader: HeaderName("X-DocuSign-Signature-1"), encoding: .base64,
            documentation: "https://developers.docusign.com/platform/webhooks/connect/hmac/"),
        Scheme(
            name: "razorpay", signatureHeader: HeaderName("X-Razorpay-Signature"), encoding: .hex,
            idHeader: HeaderName("X-Razorpay-Event-Id"),
            documentation: "https://razorpay.com/docs/webhooks/validate-test/"),
        Scheme(
            name: "woocommerce", signatureHeader: HeaderName("X-WC-Webhook-Signature"), encoding: .base64,
            idHeader: HeaderName("X-WC-Webhook-Delivery-ID"), eventHeader: HeaderName("X-WC-Webhook-Topic"),
            documentation: "https://woocommerce.github.io/woocommerce-rest-api-docs/#webhooks"),
        Scheme(
            name: "xero", signatureHeader: HeaderName("X-Xero-Signature"), encoding: .base64,
            documentation: "https://developer.xero.com/documentation/guides/webhooks/overview/"),
        Scheme(
            name: "linear", signatureHeader: HeaderName("Linear-Signature"), encoding: .hex,
            idHeader: HeaderName("Linear-Delivery"), eventHeader: HeaderName("Linear-Event"),
            documentation: "https://linear.app/developers/webhooks#securing-webhooks"),
        Scheme(
            name: "shopify", signatureHeader: HeaderName("X-Shopify-Hmac-Sha256"), encoding: .base64,
            idHeader: HeaderName("X-Shopify-Webhook-Id"), eventHeader: HeaderName("X-Shopify-Topic"),
            documentation: "https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook"),
        // Ticket Spot: GitHub-style, Sinatra example in its docs.
        Scheme(
            name: "ticketspot", signatureHeader: HeaderName("X-TS-Signature-256"), encoding: .hex, prefix: "sha256="),
        // Tito: base64 of the HMAC, event in X-Webhook-Name.
        Scheme(
            name: "tito", signatureHeader: HeaderName("Tito-Signature"), encoding: .base64,
            eventHeader: HeaderName("X-Webhook-Name"), documentation: "https://ti.to/docs/api/admin/3.1#webhooks"),
        // Workspace webhooks with the PHP `hash_hmac` example.
        Scheme(name: "x-signature", signatureHeader: HeaderName("X-Signature"), encoding: .hex),
        // Tikkl's document does not name the encoding.
        Scheme(name: "tikkl", signatureHeader: HeaderName("X-Tikkl-Signature"), encoding: .hexOrBase64),
        // Docs-platform webhooks with the Python `hmac.compare_digest` example.
        Scheme(
            name: "x-signature-256", signatureHeader: HeaderName("X-Signature-256"), encoding: .hex, prefix: "sha256="),
        // PagerDuty v3: "v1=<hex>[,v1=<hex>]", one entry per active secret.
        Scheme(
            name: "pagerduty", signatureHeader: HeaderName("X-PagerDuty-Signature"), encoding: .hex, prefix: "v1=",
            separator: ",",
            documentation: "https://developer.pagerduty.com/docs/webhooks-overview#verifying-signatures"),
        // GitLab: the secret token itself; Idempotency-Key is kept across retries (GitLab 17.4+).
        Scheme(
            name: "gitlab", signatureHeader: HeaderName("X-Gitlab-Token"), encoding: .token,
            idHeader: HeaderName("Idempotency-Key"), eventHeader: HeaderName("X-Gitlab-Event"),
            documentation: "https://docs.gitlab.com/user/project/integrations/webhooks/"),

        // MARK: templates over a timestamp (and an id)
        // standardwebhooks.com; "v1,<base64>" entries, space-separated while a secret rotates.
        standardWebhooks(
            "standard-webhooks", headerPrefix: "webhook-",
            documentation: "https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md"),
        // Svix sends the same scheme under svix-* names (webhook-* when white-labelled), and so
        // do its customers Clerk and Resend.
        standardWebhooks(
            "svix", headerPrefix: "svix-",
            documentation: "https://docs.svix.com/receiving/verifying-payloads/how-manual"),
        standardWebhooks("clerk", headerPrefix: "svix-", documentation: "https://clerk.com/docs/webhooks/sync-data"),
        standardWebhooks(
            "resend", headerPrefix: "svix-", documentation: "https://resend.com/docs/webhooks/verify-webhooks-requests"),
        // Stripe: "t=<unix>,v1=<hex>[,v1=<hex>…]"; v0 entries are test-mode signatures, skipped.
        stripeLike(
            "stripe", header: "Stripe-Signature", documentation: "https://docs.stripe.com/webhooks#verify-manually"),
        stripeLike(
            "calendly", header: "Calendly-Webhook-Signature", tolerance: 180,
            documentation: "https://developer.calendly.com/api-docs/overview/webhooks/webhook-signatures"),
        stripeLike(
            "mux", header: "Mux-Signature", documentation: "https://www.mux.com/docs/core/verify-webhook-signatures"),
        // WorkOS: "t=<unix ms>, v1=<hex>" over "<t>.<body>"; its SDKs allow 180 s.
        stripeLike(
            "workos", header: "WorkOS-Signature", timestampFormat: .unixMilliseconds, tolerance: 180,
            documentation:
                "https://workos.com/docs/events/data-syncing/webhooks/3-process-the-events/b-validate-the-requests-manually"
        ),
        // Paddle Billing: "ts=<unix>;h1=<hex>[;h1=…]" over "<ts>:<body>"; its SDKs allow 5 s.
        Scheme(
            name: "paddle", signatureHeader: HeaderName("Paddle-Signature"), encoding: .hex, prefix: "h1=",
            separator: ";", timestamp: .field("ts="), message: [.timestamp, ":", .body], tolerance: 5,
            documentation: "https://developer.paddle.com/webhooks/signature-verification"),
        // Slack: "v0=<hex>" of "v0:<timestamp>:<body>".
        Scheme(
            name: "slack", signatureHeader: HeaderName("X-Slack-Signature"), encoding: .hex, prefix: "v0=",
            timestamp: .header(HeaderName("X-Slack-Request-Timestamp")), message: ["v0:", .timestamp, ":", .body],
            documentation: "https://docs.slack.dev/authentication/verifying-requests-from-slack",
            handshake: .slackURLVerification),
        // Zoom: Slack's construction under its own headers.
        Scheme(
            name: "zoom", signatureHeader: HeaderName("X-Zm-Signature"), encoding: .hex, prefix: "v0=",
            timestamp: .header(HeaderName("X-Zm-Request-Timestamp")), message: ["v0:", .timestamp, ":", .body],
            documentation: "https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events",
            handshake: .zoomURLValidation),
        // Twitch EventSub: "sha256=<hex>" of id ‖ timestamp ‖ body, RFC 3339 timestamps, 10 minutes.
        Scheme(
            name: "twitch", signatureHeader: HeaderName("Twitch-Eventsub-Message-Signature"), encoding: .hex,
            prefix: "sha256=", timestamp: .header(HeaderName("Twitch-Eventsub-Message-Timestamp")),
            timestampFormat: .rfc3339, message: [.id, .timestamp, .body],
            idHeader: HeaderName("Twitch-Eventsub-Message-Id"),
            eventHeader: HeaderName("Twitch-Eventsub-Subscription-Type"), tolerance: 600,
            documentation: "https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-the-event-message",
            handshake: .twitchCallbackVerification),
        // Zendesk: base64 of timestamp ‖ body, ISO 8601 timestamps.
        Scheme(
            name: "zendesk", signatureHeader: HeaderName("X-Zendesk-Webhook-Signature"), encoding: .base64,
            timestamp: .header(HeaderName("X-Zendesk-Webhook-Signature-Timestamp")), timestampFormat: .rfc3339,
            message: [.timestamp, .body], idHeader: HeaderName("X-Zendesk-Webhook-Invocation-Id"),
            documentation: "https://developer.zendesk.com/documentation/webhooks/verifying/"),
        // MARK: URL-bound (the location gives the exact package URL: HOOKGUARD_URL)
        // Square: base64 HMAC-SHA256 of the notification URL ‖ body.
        Scheme(
            name: "square", signatureHeader: HeaderName("X-Square-Hmacsha256-Signature"), encoding: .base64,
            message: [.url, .body],
            documentation: "https://developer.squareup.com/docs/webhooks/step3validate"),
        // HubSpot v3: base64 HMAC-SHA256 of method ‖ URL ‖ body ‖ timestamp (milliseconds), 5 minutes.
        Scheme(
            name: "hubspot", signatureHeader: HeaderName("X-HubSpot-Signature-v3"), encoding: .base64,
            timestamp: .header(HeaderName("X-HubSpot-Request-Timestamp")), timestampFormat: .unixMilliseconds,
            message: [.method, .url, .body, .timestamp],
            documentation: "https://developers.hubspot.com/docs/api/webhooks/validating-requests"),
        // Twilio: base64 HMAC-SHA1 of URL ‖ sorted form fields (or, for JSON, of the URL with its
        // bodySHA256 parameter); the URL is tried with and without its default port.
        Scheme(
            name: "twilio", signatureHeader: HeaderName("X-Twilio-Signature"), algorithm: .sha1, encoding: .base64,
            message: [.url, .form],
            documentation: "https://www.twilio.com/docs/usage/webhooks/webhooks-security", urlPortVariants: true),

        // MARK: signed inside the body
        // Mailgun: hex HMAC-SHA256 of timestamp ‖ token under the webhook signing key, all three
        // in the JSON body's "signature" object.
        Scheme(
            name: "mailgun", signatureHeader: HeaderName("signature.signature (JSON body)"), encoding: .hex,
            timestamp: .body, message: [.timestamp, .id],
            documentation: "https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks",
            bodySignature: .mailgunJSON),
        // Adyen standard notifications: each of the body's notificationItems carries the base64
        // HMAC-SHA256 of its own fields under the hex HMAC key; Adyen wants "[accepted]" back.
        Scheme(
            name: "adyen", signatureHeader: HeaderName("additionalData.hmacSignature (JSON body, each item)"),
            encoding: .base64, keyForm: .hex,
            documentation:
                "https://docs.adyen.com/development-resources/webhooks/secure-webhooks/verify-hmac-signatures",
            bodySignature: .adyenItems, acceptedBody: "[accepted]"),

        // MARK: package keys (the location holds the sender's package key)
        // Discord interactions: Ed25519 over timestamp ‖ body, the application's package key in hex.
        Scheme(
            name: "discord", signatureHeader: HeaderName("X-Signature-Ed25519"), encoding: .hex,
            timestamp: .header(HeaderName("X-Signature-Timestamp")), message: [.timestamp, .body],
            keyForm: .hexPublicKey,
            documentation:
                "https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers",
            publicKey: .ed25519, handshake: .discordPing),
        // SendGrid's signed event webhook: ECDSA P-256/SHA-256 (base64 DER) over timestamp ‖ body,
        // the verification key as base64 of its DER SubjectPublicKeyInfo.
        Scheme(
            name: "sendgrid", signatureHeader: HeaderName("X-Twilio-Email-Event-Webhook-Signature"),
            encoding: .base64, timestamp: .header(HeaderName("X-Twilio-Email-Event-Webhook-Timestamp")),
            message: [.timestamp, .body], keyForm: .base64PublicKey,
            documentation:
                "https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features",
            publicKey: .ecdsaP256),

        // Tito's newer API: hex HMAC of "<timestamp>.<body>".
        Scheme(
            name: "tito-timestamp", signatureHeader: HeaderName("X-Tito-Signature"), encoding: .hex,
            timestamp: .header(HeaderName("X-Tito-Timestamp")), message: [.timestamp, ".", .body],
            eventHeader: HeaderName("X-Tito-Webhook-Event")),
    ]

    private static func standardWebhooks(_ name: String, headerPrefix: String, documentation: String) -> Scheme {
        Scheme(
            name: name, signatureHeader: HeaderName(headerPrefix + "signature"), encoding: .base64,
            prefix: "v1,", separator: " ", timestamp: .header(HeaderName(headerPrefix + "timestamp")),
            message: [.id, ".", .timestamp, ".", .body], keyForm: .whsecBase64,
            idHeader: HeaderName(headerPrefix + "id"), documentation: documentation, asymmetricPrefix: "v1a,")
    }

    /// Stripe's form: "t=<timestamp>,v1=<hex>[,v1=<hex>…]" over "<t>.<body>", the secret as given.
    private static func stripeLike(
        _ name: String, header: String, timestampFormat: TimestampFormat = .unixSeconds,
        tolerance: Int = SignatureVerifier.defaultTolerance, documentation: String
    ) -> Scheme {
        Scheme(
            name: name, signatureHeader: HeaderName(header), encoding: .hex, prefix: "v1=", separator: ",",
            timestamp: .field("t="), timestampFormat: timestampFormat, message: [.timestamp, ".", .body],
            tolerance: tolerance, documentation: documentation)
    }
}
