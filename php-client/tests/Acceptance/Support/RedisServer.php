<?php

declare(strict_types=1);

namespace Cometbox\Tests\Acceptance\Support;

/**
 * A throwaway redis-server on a free loopback port, without persistence.
 */
final class RedisServer
{
    private Process $process;

    private int $port;

    private function __construct(Process $process, int $port)
    {
        $this->process = $process;
        $this->port = $port;
    }

    /** Starts one and waits until it answers PING. */
    public static function start(): self
    {
        $binary = Tools::redisServer();
        for ($try = 1; ; $try++) {
            $port = Tools::freePort();
            $process = new Process('redis-' . $port, [
                $binary, '--port', (string) $port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
            ], Tools::env());
            $redis = new self($process, $port);
            try {
                $redis->waitForPing();

                return $redis;
            } catch (\RuntimeException $e) {
                $process->stop(1.0);
                if ($try === 3) { // the port was taken between freePort() and the bind, three times
                    throw $e;
                }
            }
        }
    }

    public function url(): string
    {
        return 'redis://127.0.0.1:' . $this->port;
    }

    public function stop(): void
    {
        $this->process->stop();
    }

    private function waitForPing(): void
    {
        $deadline = microtime(true) + 10;
        while (microtime(true) < $deadline) {
            if (!$this->process->isRunning()) {
                throw new \RuntimeException("redis-server exited:\n" . $this->process->output());
            }
            $socket = @fsockopen('127.0.0.1', $this->port, $errno, $errstr, 0.5);
            if ($socket !== false) {
                stream_set_timeout($socket, 1);
                fwrite($socket, "PING\r\n");
                $answer = fgets($socket);
                fclose($socket);
                if ($answer === "+PONG\r\n") {
                    return;
                }
            }
            usleep(10000);
        }
        throw new \RuntimeException("redis-server did not answer PING within 10s:\n" . $this->process->output());
    }
}
