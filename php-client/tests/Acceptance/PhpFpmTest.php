<?php

declare(strict_types=1);

namespace Cometbox\Tests\Acceptance;

use Cometbox\Tests\Acceptance\Support\FastCgi;
use Cometbox\Tests\Acceptance\Support\Http;
use Cometbox\Tests\Acceptance\Support\Node;
use Cometbox\Tests\Acceptance\Support\PhpFpm;
use Cometbox\Tests\Acceptance\Support\RedisServer;
use Cometbox\Tests\Acceptance\Support\Tools;
use Cometbox\Transport\NativeTransport;
use PHPUnit\Framework\TestCase;

/**
 * The extension under php-fpm, as applications run it: each FastCGI
 * request runs scripts/fpm-publish.php, which builds a Client and
 * publishes one message. A worker keeps one connection to the node for
 * all the requests it serves, and a node killed and restarted between
 * requests costs one reconnect and loses or repeats nothing.
 *
 * The pool loads the extension built in php-client/ext (or the one
 * COMETBOX_EXT names), whether or not the PHP running PHPUnit has it.
 */
final class PhpFpmTest extends TestCase
{
    private const SCRIPT = __DIR__ . '/scripts/fpm-publish.php';

    private static ?RedisServer $redis = null;

    /** Reads what the pool published: a node of its own, so that ss sees only the pool's connections to the other. */
    private static ?Node $reader = null;

    public static function setUpBeforeClass(): void
    {
        self::$redis = RedisServer::start();
        self::$reader = Node::start('reader', self::$redis);
    }

    public static function tearDownAfterClass(): void
    {
        foreach ([self::$reader, self::$redis] as $process) {
            if ($process !== null) {
                $process->stop();
            }
        }
        self::$reader = null;
        self::$redis = null;
    }

    public function testEachWorkerKeepsOneConnectionForAllItsRequests(): void
    {
        $node = Node::start('fpm-target', self::$redis);
        $fpm = PhpFpm::start('reuse', 2, self::extension());
        $to = self::uniqueClient();
        try {
            $answers = [];
            for ($i = 1; $i <= 30; $i++) {
                $answers[] = $this->publish($fpm->client(), $node, $to, "m$i");
            }
            $port = (int) parse_url($node->url(), PHP_URL_PORT);
            $connections = self::connectionsTo($port);
        } finally {
            $fpm->stop();
            $node->stop();
        }

        $last = [];
        foreach ($answers as $answer) {
            self::assertSame(NativeTransport::class, $answer['transport']);
            $last[$answer['pid']] = $answer['native'];
        }
        self::assertSame(range(1, 30), array_column($answers, 'id'));
        foreach ($last as $pid => $stats) {
            self::assertSame(1, $stats['connections_opened'], "worker $pid: " . json_encode($stats));
            self::assertSame($stats['requests'] - 1, $stats['connections_reused'], "worker $pid: " . json_encode($stats));
        }
        self::assertCount(count($last), $connections, "one connection per worker that served:\n" . implode("\n", $connections));
        self::assertSame(array_map(static fn (int $i): string => "m$i", range(1, 30)), array_values(Http::receive(self::$reader->url(), $to, 30)));
    }

    public function testANodeKilledAndRestartedCostsOneReconnectAndLosesNothing(): void
    {
        $port = Tools::freePort();
        $node = Node::start('fpm-restart', self::$redis, ['-listen', '127.0.0.1:' . $port]);
        $fpm = PhpFpm::start('restart', 1, self::extension());
        $to = self::uniqueClient();
        try {
            $answers = [];
            for ($i = 1; $i <= 5; $i++) {
                $answers[] = $this->publish($fpm->client(), $node, $to, "m$i");
            }
            $node->kill();
            $node = Node::start('fpm-restart', self::$redis, ['-listen', '127.0.0.1:' . $port]);
            for ($i = 6; $i <= 10; $i++) {
                $answers[] = $this->publish($fpm->client(), $node, $to, "m$i");
            }
        } finally {
            $fpm->stop();
            $node->stop();
        }

        self::assertSame(range(1, 10), array_column($answers, 'id'), 'every publish succeeded, once');
        self::assertCount(1, array_unique(array_column($answers, 'pid')), 'one worker served them all');
        $stats = end($answers)['native'];
        self::assertSame(2, $stats['connections_opened'], 'one connection before the restart, one after: ' . json_encode($stats));
        self::assertSame(1, $stats['stale_found'] + $stats['stale_retried'], 'one reconnect: ' . json_encode($stats));
        self::assertSame(
            array_map(static fn (int $i): string => "m$i", range(1, 10)),
            array_values(Http::receive(self::$reader->url(), $to, 10)),
            'nothing lost, nothing twice'
        );
    }

    /** @return array<string, mixed> the page's answer */
    private function publish(FastCgi $fcgi, Node $node, string $to, string $data): array
    {
        $answer = $fcgi->get(self::SCRIPT, http_build_query(['node' => $node->url(), 'secret' => Node::PUBLISH_SECRET, 'to' => $to, 'data' => $data]));
        $doc = json_decode($answer['body'], true);
        self::assertSame(200, $answer['status'], $answer['body'] . $answer['stderr']);
        self::assertIsArray($doc, $answer['body'] . $answer['stderr']);

        return $doc;
    }

    /**
     * The client ends of the TCP connections to $port, as ss lists them
     * (TIME-WAIT ones included: a connection closed during the test).
     *
     * @return string[]
     */
    private static function connectionsTo(int $port): array
    {
        $out = shell_exec(sprintf("ss -Htan state all '( dport = :%d )' 2>&1", $port));
        if (!is_string($out) || preg_match('/not found|command not found/', $out) === 1) {
            Tools::missing('ss is not installed: apt-get install iproute2 to count connections');
        }

        return array_values(array_filter(array_map('trim', explode("\n", (string) $out))));
    }

    /** The cometbox.so the pool loads: COMETBOX_EXT, or the one built in php-client/ext. */
    private static function extension(): string
    {
        $path = getenv('COMETBOX_EXT');
        if ($path === false || $path === '') {
            $path = dirname(__DIR__, 2) . '/ext/modules/cometbox.so';
        }
        if (!is_file($path)) {
            Tools::missing(sprintf('no cometbox extension at %s: build it (make -C php-client/ext, or make test-php-ext) or set COMETBOX_EXT', $path));
        }

        return $path;
    }

    private static function uniqueClient(): string
    {
        return 'fpm:' . bin2hex(random_bytes(6)) . '@test';
    }
}
