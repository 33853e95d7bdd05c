<?php

declare(strict_types=1);

namespace Cometbox\Tests\Acceptance\Support;

/**
 * A cometbox node built from this repository, on a port of its own
 * choosing, learnt from its "listening" log line.
 */
final class Node
{
    public const PUBLISH_SECRET = 'publish-s3cret';
    public const TOKEN_SECRET = 'token-s3cret';

    private Process $process;

    private string $url;

    private function __construct(Process $process, string $url)
    {
        $this->process = $process;
        $this->url = $url;
    }

    /**
     * Starts a node on $redis and waits for its "listening" line, then (if
     * $ready) for /readyz to answer 200.
     *
     * @param string[] $flags more flags, e.g. ['-max-message', '1KiB']
     */
    public static function start(string $name, RedisServer $redis, array $flags = [], bool $ready = true): self
    {
        $command = array_merge([
            Tools::cometbox(),
            '-listen', '127.0.0.1:0',
            '-redis-url', $redis->url(),
            '-publish-secret', self::PUBLISH_SECRET,
            '-token-secret', self::TOKEN_SECRET,
            '-log-format', 'json',
            '-node-name', $name,
            '-poll-timeout', '2s',
        ], $flags);
        $process = new Process($name, $command, Tools::env());
        $listening = $process->waitForLine('/"msg":"listening".*"addr":"(127\.0\.0\.1:\d+)"/');
        $node = new self($process, 'http://' . $listening[1]);
        if ($ready) {
            $node->waitUntilReady();
        }

        return $node;
    }

    public function url(): string
    {
        return $this->url;
    }

    /** The node's process id, e.g. to read its CPU time in /proc. */
    public function pid(): int
    {
        return $this->process->pid();
    }

    public function log(): string
    {
        return $this->process->output();
    }

    public function stop(): void
    {
        $this->process->stop();
    }

    /** Kills the node (SIGKILL): its connections end without an answer. */
    public function kill(): void
    {
        $this->process->kill();
    }

    private function waitUntilReady(): void
    {
        $deadline = microtime(true) + 15;
        do {
            $answer = Http::get($this->url . '/readyz');
            if ($answer->status() === 200) {
                return;
            }
            usleep(20000);
        } while (microtime(true) < $deadline && $this->process->isRunning());
        throw new \RuntimeException(sprintf("%s: /readyz did not answer 200 within 15s:\n%s", $this->url, $this->log()));
    }
}
