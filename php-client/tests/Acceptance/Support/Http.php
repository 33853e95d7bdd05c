<?php

declare(strict_types=1);

namespace Cometbox\Tests\Acceptance\Support;

use PHPUnit\Framework\Assert;

/**
 * Plain HTTP from the tests, with PHP's own fopen() and none of the
 * client's code: what a browser would see of a node.
 */
final class Http
{
    /** The batch size of a poll answer (-batch-size, default 100). */
    public const BATCH_SIZE = 100;

    private int $status;

    /** @var array<string, string> lower-case name => value */
    private array $headers;

    private string $body;

    /** @param array<string, string> $headers */
    private function __construct(int $status, array $headers, string $body)
    {
        $this->status = $status;
        $this->headers = $headers;
        $this->body = $body;
    }

    /**
     * @param string[] $headers "Name: value" lines
     */
    public static function get(string $url, array $headers = []): self
    {
        return self::request('GET', $url, $headers, '');
    }

    /**
     * @param string[] $headers "Name: value" lines
     */
    public static function request(string $method, string $url, array $headers, string $body): self
    {
        $context = stream_context_create(['http' => [
            'method' => $method,
            'header' => implode("\r\n", array_merge($headers, ['Connection: close'])),
            'content' => $body,
            'ignore_errors' => true,
            'follow_location' => 0,
            'timeout' => 10,
        ]]);
        $stream = @fopen($url, 'rb', false, $context);
        if ($stream === false) {
            return new self(0, [], (string) (error_get_last()['message'] ?? 'cannot connect'));
        }
        $answer = (string) stream_get_contents($stream);
        $lines = stream_get_meta_data($stream)['wrapper_data'];
        fclose($stream);

        $status = 0;
        $parsed = [];
        foreach ($lines as $line) {
            if (preg_match('~^HTTP/\S+ (\d{3})~', $line, $m) === 1) {
                $status = (int) $m[1];
                $parsed = [];
            } elseif (strpos($line, ':') !== false) {
                [$name, $value] = explode(':', $line, 2);
                $parsed[strtolower(trim($name))] = trim($value);
            }
        }

        return new self($status, $parsed, $answer);
    }

    /**
     * One poll, as a browser makes it.
     */
    public static function poll(string $node, string $client, string $since, ?string $token): self
    {
        $query = ['client' => $client, 'since' => $since];
        if ($token !== null) {
            $query['token'] = $token;
        }

        return self::get($node . '/poll?' . http_build_query($query));
    }

    /**
     * Polls $client page by page, acknowledging each page with the cursor
     * the node handed out, until $count messages came, and checks the pages
     * on the way: 200, at most BATCH_SIZE messages each, ids consecutive
     * from 1.
     *
     * @return array<int, mixed> the messages' data, by id
     */
    public static function receive(string $node, string $client, int $count): array
    {
        $token = \Cometbox\Token::mint(Node::TOKEN_SECRET, $client, time() + 300);
        $received = [];
        $since = '0';
        for ($page = 0; count($received) < $count; $page++) {
            Assert::assertLessThan(intdiv($count, self::BATCH_SIZE) + 3, $page, sprintf('too many pages for %d messages', $count));
            $answer = self::poll($node, $client, $since, $token);
            Assert::assertSame(200, $answer->status(), 'poll: ' . $answer->body());
            $messages = $answer->json();
            Assert::assertIsArray($messages);
            Assert::assertNotEmpty($messages, sprintf('an empty page after %d of %d messages', count($received), $count));
            Assert::assertLessThanOrEqual(self::BATCH_SIZE, count($messages));
            foreach ($messages as $message) {
                Assert::assertSame(count($received) + 1, $message->id, 'ids are consecutive from 1');
                $received[$message->id] = $message->data;
            }
            $cursor = $answer->header('Cometbox-Cursor');
            Assert::assertNotNull($cursor, 'every 200 carries Cometbox-Cursor');
            Assert::assertStringEndsWith(':' . end($messages)->id, $cursor);
            $since = $cursor;
        }
        Assert::assertCount($count, $received);

        return $received;
    }

    public function status(): int
    {
        return $this->status;
    }

    public function header(string $name): ?string
    {
        return $this->headers[strtolower($name)] ?? null;
    }

    public function body(): string
    {
        return $this->body;
    }

    /** @return mixed the body decoded, JSON objects as stdClass */
    public function json()
    {
        return json_decode($this->body, false, 512, JSON_THROW_ON_ERROR);
    }
}
