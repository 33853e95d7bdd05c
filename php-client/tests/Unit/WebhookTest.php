<?php

declare(strict_types=1);

namespace Cometbox\Tests\Unit;

use Cometbox\Exception\CometboxException;
use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Exception\WebhookException;
use Cometbox\Webhook;
use Cometbox\Webhook\ClientOffline;
use Cometbox\Webhook\ClientOnline;
use Cometbox\Webhook\UnknownEvent;
use PHPUnit\Framework\TestCase;

/**
 * Webhook::verify against the vectors the Go signer produces, and the
 * requests it must refuse.
 */
final class WebhookTest extends TestCase
{
    /** Shared with the Go suite (pkg/webhook). */
    private const VECTORS = __DIR__ . '/../../../pkg/webhook/testdata/vectors.json';

    /** @return list<array{secrets: string[], time: int, body: string, header: string}> */
    private static function vectors(): array
    {
        $json = file_get_contents(self::VECTORS);
        self::assertIsString($json, 'cannot read ' . self::VECTORS);

        return json_decode($json, true, 512, JSON_THROW_ON_ERROR);
    }

    public function testTheVectorsVerify(): void
    {
        foreach (self::vectors() as $v) {
            foreach ($v['secrets'] as $secret) {
                $events = Webhook::verify(['Cometbox-Signature' => $v['header']], $v['body'], $secret, 300, $v['time'] + 10);
                self::assertCount(1, $events);
            }
            self::assertCount(1, Webhook::verify(['cometbox-signature' => $v['header']], $v['body'], ['wrong', $v['secrets'][0]], 300, $v['time']));
        }
    }

    public function testTypedEvents(): void
    {
        [$online, $offline] = self::vectors();

        $events = Webhook::verify(['Cometbox-Signature' => $online['header']], $online['body'], 'whsec_test', 300, $online['time']);
        self::assertInstanceOf(ClientOnline::class, $events[0]);
        self::assertSame('alice', $events[0]->client());
        self::assertSame('0.1800000000100-0', $events[0]->id());
        self::assertSame('client_online', $events[0]->name());
        self::assertSame(1800000000100, $events[0]->timeMs());

        $events = Webhook::verify(['HTTP_COMETBOX_SIGNATURE' => $offline['header']], $offline['body'], 'old-secret', 300, $offline['time']);
        self::assertInstanceOf(ClientOffline::class, $events[0]);
        self::assertSame('user:42', $events[0]->client());
        self::assertSame(1800000054000, $events[0]->timeMs());
    }

    public function testHeadersAsLists(): void
    {
        $v = self::vectors()[0];
        self::assertCount(1, Webhook::verify(['Cometbox-Signature' => [$v['header']]], $v['body'], 'whsec_test', 300, $v['time']));
    }

    public function testEventsOfLaterVersionsAreKeptAsUnknown(): void
    {
        $body = '{"time_ms":1,"events":[{"id":"0.1-0","name":"group_occupied","group":"room:42","time_ms":5}]}';
        $header = 't=1800000000,v1=' . hash_hmac('sha256', '1800000000.' . $body, 's');

        $events = Webhook::verify(['Cometbox-Signature' => $header], $body, 's', 300, 1800000000);

        self::assertInstanceOf(UnknownEvent::class, $events[0]);
        self::assertSame('group_occupied', $events[0]->name());
        self::assertSame('room:42', $events[0]->data()['group']);
    }

    /**
     * @dataProvider refused
     *
     * @param array<string, string> $headers
     */
    public function testRefused(array $headers, string $body, int $now, string $why): void
    {
        try {
            Webhook::verify($headers, $body, 'whsec_test', 300, $now);
            self::fail('accepted');
        } catch (WebhookException $e) {
            self::assertInstanceOf(CometboxException::class, $e);
            self::assertStringContainsString($why, $e->getMessage());
        }
    }

    /** @return iterable<string, array{array<string, string>, string, int, string}> */
    public function refused(): iterable
    {
        $v = self::vectors()[0];
        $ok = ['Cometbox-Signature' => $v['header']];
        $t = $v['time'];
        yield 'no header' => [[], $v['body'], $t, 'no Cometbox-Signature'];
        yield 'no v1' => [['Cometbox-Signature' => 't=' . $t], $v['body'], $t, 'malformed'];
        yield 'no t' => [['Cometbox-Signature' => substr($v['header'], strpos($v['header'], ',') + 1)], $v['body'], $t, 'malformed'];
        yield 'body changed' => [$ok, str_replace('alice', 'mallory', $v['body']), $t, 'no signature matches'];
        yield 'timestamp changed' => [['Cometbox-Signature' => str_replace('t=' . $t, 't=' . ($t + 1), $v['header'])], $v['body'], $t, 'no signature matches'];
        yield 'replayed later' => [$ok, $v['body'], $t + 301, 'tolerance'];
        yield 'from the future' => [$ok, $v['body'], $t - 301, 'tolerance'];
        $junk = 'not json';
        yield 'signed junk' => [['Cometbox-Signature' => 't=' . $t . ',v1=' . hash_hmac('sha256', $t . '.' . $junk, 'whsec_test')], $junk, $t, 'not a cometbox webhook'];
        $noClient = '{"time_ms":1,"events":[{"id":"x","name":"client_online","time_ms":1}]}';
        yield 'an event without its client' => [['Cometbox-Signature' => 't=' . $t . ',v1=' . hash_hmac('sha256', $t . '.' . $noClient, 'whsec_test')], $noClient, $t, 'without a client'];
    }

    public function testAnEmptySecretIsAMistake(): void
    {
        $this->expectException(InvalidArgumentException::class);
        Webhook::verify([], '', '');
    }
}
