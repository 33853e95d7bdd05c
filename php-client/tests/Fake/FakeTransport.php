<?php

declare(strict_types=1);

namespace Cometbox\Tests\Fake;

use Cometbox\Exception\TransportException;
use Cometbox\Transport\Request;
use Cometbox\Transport\Response;
use Cometbox\Transport\Transport;

/**
 * An in-memory transport: answers from a script, in order (the last answer
 * repeats), and remembers every request. A scripted answer is a Response, a
 * TransportException to throw, or a callable(Request): Response.
 */
final class FakeTransport implements Transport
{
    /** @var array<int, Response|TransportException|callable> */
    private array $script;

    /** @var Request[] */
    private array $requests = [];

    private ?FakeClock $clock;

    private float $latency;

    /**
     * @param array<int, Response|TransportException|callable> $script
     * @param float                                            $latency seconds each request takes on $clock
     */
    public function __construct(array $script = [], ?FakeClock $clock = null, float $latency = 0.0)
    {
        $this->script = $script;
        $this->clock = $clock;
        $this->latency = $latency;
    }

    /**
     * Answers every publish with the receipt it asks for, ids counting up
     * per client, as a node would.
     */
    public static function node(): self
    {
        $ids = [];

        return new self([static function (Request $request) use (&$ids): Response {
            return self::receipt($request, $ids);
        }]);
    }

    /**
     * The receipt of a publish request, in its format; $ids counts per client.
     *
     * @param array<string, int> $ids
     */
    public static function receipt(Request $request, array &$ids = []): Response
    {
        $tos = [];
        if (strpos((string) $request->header('Content-Type'), 'json') !== false) {
            foreach (json_decode($request->body(), true)['messages'] as $m) {
                $tos[] = $m['to'];
            }
            $queued = [];
            foreach ($tos as $to) {
                $ids[$to] = ($ids[$to] ?? 0) + 1;
                $queued[] = ['to' => $to, 'id' => $ids[$to]];
            }

            return new Response(200, ['Content-Type' => 'application/json'], json_encode(['queued' => $queued]) . "\n");
        }
        preg_match_all('/<message to="([^"]*)"/', $request->body(), $m);
        $xml = '<?xml version="1.0" encoding="UTF-8"?>' . "\n<queued>";
        foreach ($m[1] as $to) {
            $ids[$to] = ($ids[$to] ?? 0) + 1;
            $xml .= sprintf('<message to="%s" id="%d"/>', $to, $ids[$to]);
        }

        return new Response(200, ['Content-Type' => 'application/xml; charset=utf-8'], $xml . "</queued>\n");
    }

    public static function error(int $status, string $code, string $message, array $headers = []): Response
    {
        return new Response($status, $headers + ['Content-Type' => 'application/json'], json_encode(['error' => ['code' => $code, 'message' => $message]]));
    }

    public function send(Request $request): Response
    {
        $this->requests[] = $request;
        if ($this->clock !== null) {
            $this->clock->advance($this->latency);
        }
        $next = count($this->script) > 1 ? array_shift($this->script) : ($this->script[0] ?? null);
        if ($next === null) {
            throw new \LogicException('FakeTransport: nothing scripted for ' . $request->url());
        }
        if ($next instanceof TransportException) {
            throw $next;
        }
        if ($next instanceof Response) {
            return $next;
        }

        return $next($request);
    }

    /** @return Request[] */
    public function requests(): array
    {
        return $this->requests;
    }

    public function lastRequest(): Request
    {
        $last = end($this->requests);
        if ($last === false) {
            throw new \LogicException('FakeTransport: no request was sent');
        }

        return $last;
    }

    /** @return string[] the URL of each request, in order */
    public function urls(): array
    {
        return array_map(static function (Request $r): string {
            return $r->url();
        }, $this->requests);
    }
}
