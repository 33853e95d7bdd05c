<?php

declare(strict_types=1);

namespace Cometbox;

use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Exception\WebhookException;
use Cometbox\Webhook\ClientOffline;
use Cometbox\Webhook\ClientOnline;
use Cometbox\Webhook\Event;
use Cometbox\Webhook\UnknownEvent;

/**
 * Checks a webhook request from the nodes (-webhook-url) and reads its
 * events, in one call:
 *
 *     $events = Webhook::verify(getallheaders(), file_get_contents('php://input'), getenv('COMETBOX_WEBHOOK_SECRET'));
 *     foreach ($events as $event) {
 *         if ($event instanceof Webhook\ClientOnline) { ... $event->client() ... }
 *     }
 *
 * The nodes sign each request as Stripe does: Cometbox-Signature is
 * "t=UNIX,v1=HEX", HEX the HMAC-SHA256 under the webhook secret of UNIX, a
 * dot and the raw body (one v1 per secret while one is rotated). verify()
 * accepts the request when one v1 matches under one of the secrets given
 * and UNIX is within the tolerance of now, so that a captured request
 * cannot be replayed later. Delivery is at least once: drop events whose
 * id you have seen.
 */
final class Webhook
{
    /** The signature header's name. */
    public const HEADER = 'Cometbox-Signature';

    /** How old (or how far ahead) a signature's timestamp may be by default, in seconds. */
    public const TOLERANCE = 300;

    private function __construct()
    {
    }

    /**
     * @param array<string, string|string[]> $headers   the request's headers: getallheaders(), a PSR-7
     *                                                  getHeaders(), or $_SERVER (HTTP_COMETBOX_SIGNATURE)
     * @param string                         $body      the raw body, exactly as received
     * @param string|string[]                $secret    the nodes' -webhook-secret; several while one is rotated
     * @param int                            $tolerance seconds a signature's timestamp may be from now
     * @param int|null                       $now       Unix seconds; null: time()
     *
     * @return Event[] the request's events, in order
     *
     * @throws WebhookException         for a missing, malformed or wrong signature, an old one, or a
     *                                  body that is not a webhook's
     * @throws InvalidArgumentException for an empty secret
     */
    public static function verify(array $headers, string $body, $secret, int $tolerance = self::TOLERANCE, ?int $now = null): array
    {
        $secrets = is_array($secret) ? array_values($secret) : [$secret];
        foreach ($secrets as $s) {
            if (!is_string($s) || $s === '') {
                throw new InvalidArgumentException('Webhook::verify(): the secret must be a non-empty string, or a list of them');
            }
        }
        if ($secrets === []) {
            throw new InvalidArgumentException('Webhook::verify(): no secret given');
        }
        $header = self::header($headers);
        if ($header === null) {
            throw new WebhookException('no ' . self::HEADER . ' header: not a signed cometbox webhook');
        }
        $timestamp = null;
        $signatures = [];
        foreach (explode(',', $header) as $part) {
            $kv = explode('=', trim($part), 2);
            if (count($kv) !== 2) {
                continue;
            }
            if ($kv[0] === 't') {
                $timestamp = $kv[1];
            } elseif ($kv[0] === 'v1') {
                $signatures[] = $kv[1];
            }
        }
        if ($timestamp === null || preg_match('/^\d{1,12}$/', $timestamp) !== 1 || $signatures === []) {
            throw new WebhookException('malformed ' . self::HEADER . ' header: want t=UNIX,v1=HEX');
        }
        $valid = false;
        foreach ($secrets as $s) {
            $expected = hash_hmac('sha256', $timestamp . '.' . $body, $s);
            foreach ($signatures as $signature) {
                if (hash_equals($expected, $signature)) {
                    $valid = true;
                }
            }
        }
        if (!$valid) {
            throw new WebhookException('bad ' . self::HEADER . ': no signature matches the body under the secret');
        }
        $age = ($now ?? time()) - (int) $timestamp;
        if (abs($age) > $tolerance) {
            throw new WebhookException(sprintf('%s is %d seconds old, beyond the %d-second tolerance: a replay, or a clock far off', self::HEADER, $age, $tolerance));
        }

        return self::events($body);
    }

    /**
     * @param array<string, string|string[]> $headers
     */
    private static function header(array $headers): ?string
    {
        foreach ($headers as $name => $value) {
            $name = strtolower(str_replace('_', '-', (string) $name));
            if ($name === 'cometbox-signature' || $name === 'http-cometbox-signature') {
                if (is_array($value)) {
                    $value = implode(',', $value);
                }

                return is_string($value) ? $value : null;
            }
        }

        return null;
    }

    /**
     * @return Event[]
     */
    private static function events(string $body): array
    {
        $doc = json_decode($body, true);
        if (!is_array($doc) || !isset($doc['events']) || !is_array($doc['events'])) {
            throw new WebhookException('the body is not a cometbox webhook: want {"time_ms": ..., "events": [...]}');
        }
        $events = [];
        foreach ($doc['events'] as $i => $e) {
            if (!is_array($e) || !is_string($e['id'] ?? null) || !is_string($e['name'] ?? null) || !is_int($e['time_ms'] ?? null)) {
                throw new WebhookException(sprintf('events[%s]: want id, name and time_ms', $i));
            }
            switch ($e['name']) {
                case 'client_online':
                case 'client_offline':
                    if (!is_string($e['client'] ?? null)) {
                        throw new WebhookException(sprintf('events[%s]: %s without a client', $i, $e['name']));
                    }
                    $events[] = $e['name'] === 'client_online'
                        ? new ClientOnline($e['id'], $e['client'], $e['time_ms'])
                        : new ClientOffline($e['id'], $e['client'], $e['time_ms']);
                    break;
                default:
                    $events[] = new UnknownEvent($e['id'], $e['name'], $e['time_ms'], $e);
            }
        }

        return $events;
    }
}
