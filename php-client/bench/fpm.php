<?php

/*
 * make bench-php: the PHP class against the cometbox extension, through a
 * real php-fpm pool, as a PHP application publishes.
 *
 *     php bench/fpm.php [--requests=N] [--workers=N] [--ext=path/to/cometbox.so]
 *
 * Starts a redis-server (the embedded Redis without one), a cometbox node
 * (COMETBOX_BIN, or go build) and, for each side, a php-fpm pool of
 * --workers static workers (Debian's php.ini: opcache on, as production
 * runs): one without the extension (Transports::detect() picks curl) and
 * one with it (detect() picks the native transport). A FastCGI client
 * drives --workers concurrent loops of one request after another; every
 * request runs tests/Acceptance/scripts/fpm-publish.php, which publishes
 * one message. Reported per side: publishes per second (in all and per
 * worker), p50/p99 of the publish in the page (new Client + send()) and
 * of the whole FastCGI request, and the TCP connections the node saw per
 * 1,000 requests, counted with ss (each connection leaves a TIME-WAIT or
 * stays established for the minute a run takes; a fresh node port per
 * side keeps the counts apart).
 */

declare(strict_types=1);

use Cometbox\Tests\Acceptance\Support\FastCgi;
use Cometbox\Tests\Acceptance\Support\Node;
use Cometbox\Tests\Acceptance\Support\PhpFpm;
use Cometbox\Tests\Acceptance\Support\Process;
use Cometbox\Tests\Acceptance\Support\RedisServer;
use Cometbox\Tests\Acceptance\Support\Tools;

require dirname(__DIR__) . '/tests/bootstrap.php';
@include_once 'PHPUnit/Autoload.php'; // Tools reports a missing tool through PHPUnit's Assert

$options = getopt('', ['requests:', 'workers:', 'ext:', 'warmup:']);
$requests = (int) ($options['requests'] ?? 5000);
$workers = max(1, (int) ($options['workers'] ?? 1));
$warmup = (int) ($options['warmup'] ?? 200);
$extension = $options['ext'] ?? dirname(__DIR__) . '/ext/modules/cometbox.so';
if (!is_file($extension)) {
    fwrite(STDERR, "bench/fpm.php: no extension at $extension: build it (make -C php-client/ext, see ext/README.md) or pass --ext\n");
    exit(2);
}
if (PhpFpm::binary() === null) {
    fwrite(STDERR, "bench/fpm.php: php-fpm is not installed (apt-get install php-fpm)\n");
    exit(2);
}
if (!is_executable('/usr/bin/ss') && !is_executable('/bin/ss')) {
    fwrite(STDERR, "bench/fpm.php: ss is not installed (apt-get install iproute2)\n");
    exit(2);
}

$redis = is_string(shell_exec('command -v redis-server')) ? RedisServer::start() : null;
$script = dirname(__DIR__) . '/tests/Acceptance/scripts/fpm-publish.php';

printf("php-fpm %s, %d worker%s, %d requests per side after %d to warm up; Redis: %s; load average %s\n\n",
    PHP_VERSION, $workers, $workers === 1 ? '' : 's', $requests, $warmup,
    $redis !== null ? 'redis-server' : 'embedded', implode(' ', array_map(static fn ($l) => sprintf('%.2f', $l), sys_getloadavg() ?: [])));

$rows = [];
foreach (['class (curl)' => null, 'extension (native)' => $extension] as $side => $ext) {
    $node = $redis !== null
        ? Node::start('bench', $redis)
        : Node::startEmbedded('bench');
    $port = (int) parse_url($node->url(), PHP_URL_PORT);
    $fpm = PhpFpm::start('bench' . ($ext !== null ? 'ext' : 'class'), $workers, $ext);
    $query = static function (int $i) use ($node): string {
        return http_build_query(['node' => $node->url(), 'secret' => Node::PUBLISH_SECRET, 'to' => 'bench-' . ($i % 100), 'data' => 'hello ' . $i]);
    };

    run($fpm->client(), $script, $warmup, $workers, $query);
    $before = connections($port);
    [$wall, $publish, $page, $pids, $transport] = run($fpm->client(), $script, $requests, $workers, $query);
    $opened = connections($port) - $before;

    $fpm->stop();
    $node->stop();
    $rows[] = [
        'side' => $side,
        'transport' => $transport,
        'rate' => $requests / $wall,
        'per_worker' => $requests / $wall / $workers,
        'publish' => [percentile($publish, 50), percentile($publish, 99)],
        'page' => [percentile($page, 50), percentile($page, 99)],
        'connections' => $opened * 1000 / $requests,
        'workers_seen' => count($pids),
    ];
}
if ($redis !== null) {
    $redis->stop();
}

echo "| side | publishes/s | per worker | publish p50 / p99 | request p50 / p99 | connections per 1,000 requests |\n";
echo "|---|---:|---:|---:|---:|---:|\n";
foreach ($rows as $r) {
    printf("| %s | %.0f | %.0f | %.0f / %.0f µs | %.0f / %.0f µs | %.1f |\n",
        $r['side'], $r['rate'], $r['per_worker'], $r['publish'][0], $r['publish'][1], $r['page'][0], $r['page'][1], $r['connections']);
}
printf("\nextension / class, publishes per second: %.2fx\n", $rows[1]['rate'] / $rows[0]['rate']);

/**
 * $n requests over $loops concurrent FastCGI connections.
 *
 * @return array{float, float[], float[], array<int, true>, string} wall seconds, publish µs, request µs, worker pids, transport
 */
function run(FastCgi $fcgi, string $script, int $n, int $loops, callable $query): array
{
    // Each loop is a child process: the driver must never be what waits.
    $per = intdiv($n, $loops);
    $children = [];
    $start = microtime(true);
    for ($l = 0; $l < $loops; $l++) {
        $out = Tools::tempDir() . "/bench-loop-$l.json";
        $pid = pcntl_fork();
        if ($pid === 0) {
            $publish = $page = $pids = [];
            $transport = '';
            for ($i = 0; $i < $per; $i++) {
                $t = hrtime(true);
                $answer = $fcgi->get($script, $query($l * $per + $i));
                $page[] = (hrtime(true) - $t) / 1000;
                $doc = json_decode($answer['body'], true);
                if (!is_array($doc) || !isset($doc['id'])) {
                    fwrite(STDERR, "bad answer: {$answer['body']} {$answer['stderr']}\n");
                    exit(1);
                }
                $publish[] = $doc['publish_ns'] / 1000;
                $pids[$doc['pid']] = true;
                $transport = $doc['transport'];
            }
            file_put_contents($out, json_encode([$publish, $page, $pids, $transport]));
            pcntl_exec('/bin/true'); // end without the parent's shutdown functions (they stop the node)
            exit(1);
        }
        $children[$pid] = $out;
    }
    $publish = $page = $pids = [];
    $transport = '';
    foreach ($children as $pid => $out) {
        pcntl_waitpid($pid, $status);
        if (pcntl_wexitstatus($status) !== 0) {
            throw new RuntimeException('a bench loop failed');
        }
        [$p, $g, $w, $transport] = json_decode((string) file_get_contents($out), true);
        array_push($publish, ...$p);
        array_push($page, ...$g);
        $pids += $w;
        unlink($out);
    }

    return [microtime(true) - $start, $publish, $page, $pids, $transport];
}

/** TCP connections to the node's port seen by ss: client ends in any state, and node ends in TIME-WAIT. */
function connections(int $port): int
{
    $clients = (string) shell_exec(sprintf("ss -Htan state all '( dport = :%d )' | wc -l", $port));
    $closedByNode = (string) shell_exec(sprintf("ss -Htan state time-wait '( sport = :%d )' | wc -l", $port));

    return (int) trim($clients) + (int) trim($closedByNode);
}

/** @param float[] $values */
function percentile(array $values, int $p): float
{
    sort($values);

    return $values[(int) min(count($values) - 1, floor(count($values) * $p / 100))];
}
