<?php

declare(strict_types=1);

namespace Cometbox;

use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Exception\LogicException;
use Cometbox\Exception\TransportException;
use Cometbox\Format\Format;
use Cometbox\Format\JsonFormat;
use Cometbox\Format\XmlFormat;
use Cometbox\Internal\NodePool;
use Cometbox\Internal\Text;
use Cometbox\Transport\Response;
use Cometbox\Transport\Transport;
use Cometbox\Transport\Transports;

/**
 * Publishes messages to cometbox nodes, mints browser tokens, and asks the
 * nodes' server API about clients and acts on them.
 *
 *     $cometbox = new Client(['http://node1:8080', 'http://node2:8080'], getenv('COMETBOX_PUBLISH_SECRET'));
 *     $id = $cometbox->send('alice', 'Hello');
 *     $ids = $cometbox->batch()->add('alice', 'hi')->add('bob', ['x' => 1])->send();
 *     $cometbox->join('room:42', ['alice', 'bob']);
 *     $members = $cometbox->sendToGroup('room:42', 'Hi all', 'alice'); // bob: 1
 *
 * Every publish carries a random idempotency key and fails over from node
 * to node on network errors and 5xx answers, within the timeout; a 4xx
 * answer is thrown at once as an ApiException. See README.md.
 *
 * A Client keeps its transport's connection open between calls: make one
 * per process (or per request) and reuse it.
 */
final class Client implements Publisher
{
    public const VERSION = '0.1.0';

    /** The XML publish format: the default. */
    public const FORMAT_XML = 'xml';

    /** The JSON publish format: carries control characters, which XML cannot. */
    public const FORMAT_JSON = 'json';

    /** The options fromOptions() takes, with the types it accepts. */
    private const OPTIONS = [
        'nodes' => 'a list of node URLs',
        'secret' => 'a string',
        'timeout' => 'a number of seconds',
        'transport' => 'a Transport or one of "auto", "native", "curl", "stream", "socket"',
        'tokenSecret' => 'a string',
        'format' => '"xml" or "json"',
        'maxAttempts' => 'an int or null',
        'connectTimeout' => 'a number of seconds',
        'adminSecret' => 'a string',
    ];

    /** The most clients one GET /api/presence asks about; presence() splits longer lists. */
    private const PRESENCE_BATCH = 100;

    /** The most clients one membership request names; join() and leave() split longer lists. */
    private const MEMBERS_BATCH = 1000;

    /** @var string[] */
    private array $nodes;

    private string $secret;

    private string $tokenSecret;

    private string $adminSecret;

    private Format $format;

    private Transport $transport;

    private NodePool $pool;

    /**
     * @param string[]       $nodes          the nodes' base URLs, http(s)://host[:port][/path]
     * @param string         $secret         the nodes' -publish-secret; empty when publishing is open
     * @param float          $timeout        seconds one call may take, all attempts and waits together
     * @param Transport|null $transport      null: the best one this PHP has (Transports::detect())
     * @param string         $tokenSecret    the nodes' -token-secret, for token(); empty: no tokens
     * @param string         $format         the publish body: self::FORMAT_XML or self::FORMAT_JSON
     * @param int|null       $maxAttempts    the most requests one call makes; null: 3, or the number of nodes if more
     * @param float          $connectTimeout the most seconds one attempt spends connecting (within $timeout)
     * @param string         $adminSecret    the nodes' -admin-secret, for the server API; empty: $secret is used
     *
     * @throws InvalidArgumentException naming the first bad argument
     */
    public function __construct(
        array $nodes,
        string $secret = '',
        float $timeout = 2.0,
        ?Transport $transport = null,
        string $tokenSecret = '',
        string $format = self::FORMAT_XML,
        ?int $maxAttempts = null,
        float $connectTimeout = 1.0,
        string $adminSecret = ''
    ) {
        $this->nodes = self::checkNodes($nodes);
        self::checkSecret($secret);
        self::checkSecret($adminSecret);
        self::checkSeconds('timeout', $timeout);
        self::checkSeconds('connectTimeout', $connectTimeout);
        if ($maxAttempts !== null && $maxAttempts < 1) {
            throw new InvalidArgumentException(sprintf('maxAttempts %d: want 1 or more, or null', $maxAttempts));
        }
        if ($format === self::FORMAT_XML) {
            $this->format = new XmlFormat();
        } elseif ($format === self::FORMAT_JSON) {
            $this->format = new JsonFormat();
        } else {
            throw new InvalidArgumentException(sprintf('format %s: want "xml" or "json"', Text::quote($format)));
        }

        $this->secret = $secret;
        $this->tokenSecret = $tokenSecret;
        $this->adminSecret = $adminSecret;
        $this->transport = $transport ?? Transports::detect();
        $this->pool = new NodePool(
            $this->nodes,
            $this->transport,
            $timeout,
            $connectTimeout,
            $maxAttempts ?? max(3, count($this->nodes))
        );
    }

    /**
     * Builds a Client from an options array, for configuration kept as
     * data. The keys are the constructor's parameter names; "nodes" is
     * required, and "transport" may also name a transport ("auto", "native",
     * "curl", "stream", "socket"):
     *
     *     Client::fromOptions(['nodes' => ['http://node1:8080'], 'secret' => '...', 'timeout' => 2.0]);
     *
     * @param array<string, mixed> $options
     *
     * @throws InvalidArgumentException for an unknown key, a missing "nodes" or a value of the wrong type
     */
    public static function fromOptions(array $options): self
    {
        foreach ($options as $key => $value) {
            if (!isset(self::OPTIONS[$key])) {
                throw new InvalidArgumentException(sprintf(
                    'unknown option %s%s; the options are: %s',
                    Text::quote((string) $key),
                    self::didYouMean((string) $key),
                    implode(', ', array_keys(self::OPTIONS))
                ));
            }
            if (!self::optionTypeFits($key, $value)) {
                throw new InvalidArgumentException(sprintf('option "%s": want %s, got %s', $key, self::OPTIONS[$key], self::typeOf($value)));
            }
        }
        if (!isset($options['nodes'])) {
            throw new InvalidArgumentException('option "nodes" is required: the list of node URLs');
        }
        $transport = $options['transport'] ?? null;

        return new self(
            $options['nodes'],
            $options['secret'] ?? '',
            (float) ($options['timeout'] ?? 2.0),
            is_string($transport) ? Transports::named($transport) : $transport,
            $options['tokenSecret'] ?? '',
            $options['format'] ?? self::FORMAT_XML,
            $options['maxAttempts'] ?? null,
            (float) ($options['connectTimeout'] ?? 1.0),
            $options['adminSecret'] ?? ''
        );
    }

    public function send(string $client, $data, ?string $idempotencyKey = null): int
    {
        return $this->sendMany([Message::of($client, $data)], $idempotencyKey)[0];
    }

    public function sendToGroup(string $group, $data, ?string $except = null, ?string $idempotencyKey = null): int
    {
        return $this->sendMany([Message::toGroup($group, $data, $except)], $idempotencyKey)[0];
    }

    public function sendMany(array $messages, ?string $idempotencyKey = null): array
    {
        if ($messages === []) {
            throw new InvalidArgumentException('no messages to send');
        }
        $batch = [];
        foreach ($messages as $index => $message) {
            $batch[$index] = self::toMessage($index, $message);
        }
        $key = $idempotencyKey ?? bin2hex(random_bytes(16));
        ClientId::check($key, 'idempotency key');
        $body = $this->format->encode($batch);

        $headers = [
            'Content-Type' => $this->format->contentType(),
            'Accept' => $this->format->contentType(),
            'Idempotency-Key' => $key,
            'User-Agent' => 'cometbox-php/' . self::VERSION . ' PHP/' . PHP_VERSION,
        ];
        if ($this->secret !== '') {
            $headers['Authorization'] = 'Bearer ' . $this->secret;
        }

        return $this->pool->post('/publish', $headers, $body, $key, function (Response $answer, string $node) use ($batch): array {
            $ids = $this->format->receipts($answer->body(), $batch);
            if ($ids === null) {
                throw new TransportException(sprintf(
                    'cometbox node %s answered %d, but not with the receipt of %d message%s: %s',
                    $node,
                    $answer->status(),
                    count($batch),
                    count($batch) === 1 ? '' : 's',
                    Text::quote($answer->body(), 120)
                ));
            }

            return $ids;
        });
    }

    public function batch(): Batch
    {
        return new Batch($this);
    }

    public function token(string $client, int $ttlSeconds): string
    {
        if ($this->tokenSecret === '') {
            throw new LogicException('token(): this Client has no token secret; pass the nodes\' -token-secret as tokenSecret');
        }
        if ($ttlSeconds < 1) {
            throw new InvalidArgumentException(sprintf('token lifetime %d seconds: want 1 or more', $ttlSeconds));
        }

        return Token::mint($this->tokenSecret, $client, time() + $ttlSeconds);
    }

    public function presence(array $clients): array
    {
        $ids = [];
        foreach (array_values($clients) as $i => $client) {
            if (!is_string($client)) {
                throw new InvalidArgumentException(sprintf('clients[%d]: want a client id string, got %s', $i, self::typeOf($client)));
            }
            ClientId::check($client);
            $ids[$client] = true;
        }
        $out = [];
        foreach (array_chunk(array_keys($ids), self::PRESENCE_BATCH) as $chunk) {
            $query = implode('&', array_map(static function (string $c): string {
                return 'client=' . rawurlencode($c);
            }, $chunk));
            $items = $this->api('GET', '/api/presence?' . $query, '', 'clients')['clients'];
            foreach (is_array($items) ? $items : [] as $item) {
                $p = Presence::fromArray(is_array($item) ? $item : []);
                $out[$p->client()] = $p;
            }
        }

        return $out;
    }

    public function inspect(string $client): ClientInfo
    {
        ClientId::check($client);

        return ClientInfo::fromArray($this->api('GET', '/api/clients/' . rawurlencode($client), '', 'client'));
    }

    public function deleteQueue(string $client): bool
    {
        ClientId::check($client);

        return ($this->api('DELETE', '/api/clients/' . rawurlencode($client), '', 'deleted')['deleted'] ?? false) === true;
    }

    public function disconnect(string $client, bool $refuseTokens = false, ?int $tokenTtlSeconds = null): ?int
    {
        ClientId::check($client);
        if ($tokenTtlSeconds !== null && !$refuseTokens) {
            throw new InvalidArgumentException('disconnect(): tokenTtlSeconds applies only with refuseTokens');
        }
        if ($tokenTtlSeconds !== null && $tokenTtlSeconds < 1) {
            throw new InvalidArgumentException(sprintf('token lifetime %d seconds: want 1 or more', $tokenTtlSeconds));
        }
        $body = '';
        if ($refuseTokens) {
            $request = ['refuse_tokens' => true];
            if ($tokenTtlSeconds !== null) {
                $request['token_ttl'] = $tokenTtlSeconds;
            }
            $body = (string) json_encode($request);
        }
        $answer = $this->api('POST', '/api/clients/' . rawurlencode($client) . '/disconnect', $body, 'client');

        return isset($answer['tokens_refused_until']) ? (int) $answer['tokens_refused_until'] : null;
    }

    public function join(string $group, array $clients): int
    {
        return $this->membership('POST', $group, $clients, 'added');
    }

    public function leave(string $group, array $clients): int
    {
        return $this->membership('DELETE', $group, $clients, 'removed');
    }

    public function members(string $group, ?string $after = null, int $limit = 100, bool $online = false): GroupPage
    {
        ClientId::check($group, 'group name');
        $query = self::pageQuery($after, $limit, 'client id') . ($online ? '&online=true' : '');

        return GroupPage::fromArray($this->api('GET', '/groups/' . rawurlencode($group) . '/members' . $query, '', 'members', true), 'members');
    }

    public function groupsOf(string $client, ?string $after = null, int $limit = 100): GroupPage
    {
        ClientId::check($client);
        $query = self::pageQuery($after, $limit, 'group name');

        return GroupPage::fromArray($this->api('GET', '/groups?member=' . rawurlencode($client) . '&' . substr($query, 1), '', 'groups', true), 'groups');
    }

    /**
     * Adds ($method POST) or removes (DELETE) $clients, a thousand a
     * request, and sums the answers' $count.
     *
     * @param array<mixed> $clients
     */
    private function membership(string $method, string $group, array $clients, string $count): int
    {
        ClientId::check($group, 'group name');
        $ids = [];
        foreach (array_values($clients) as $i => $client) {
            if (!is_string($client)) {
                throw new InvalidArgumentException(sprintf('clients[%d]: want a client id string, got %s', $i, self::typeOf($client)));
            }
            try {
                ClientId::check($client);
            } catch (InvalidArgumentException $e) {
                throw new InvalidArgumentException(sprintf('clients[%d]: %s', $i, $e->getMessage()), 0, $e);
            }
            $ids[$client] = true;
        }
        if ($ids === []) {
            throw new InvalidArgumentException('no clients: name one or more');
        }
        $n = 0;
        foreach (array_chunk(array_keys($ids), self::MEMBERS_BATCH) as $chunk) {
            $body = (string) json_encode(['clients' => $chunk], Message::JSON_FLAGS);
            $answer = $this->api($method, '/groups/' . rawurlencode($group) . '/members', $body, $count, true);
            $n += (int) $answer[$count];
        }

        return $n;
    }

    /** The ?after=&limit= of a page request, checked. */
    private static function pageQuery(?string $after, int $limit, string $what): string
    {
        if ($limit < 1 || $limit > 1000) {
            throw new InvalidArgumentException(sprintf('limit %d: want 1 to 1000', $limit));
        }
        $query = '?limit=' . $limit;
        if ($after !== null) {
            ClientId::check($after, 'after (a ' . $what . ')');
            $query .= '&after=' . rawurlencode($after);
        }

        return $query;
    }

    /**
     * Calls the server API (or, with $publish, the routes behind the
     * publish secret) and returns its JSON answer, which must have the key
     * $expect.
     *
     * @return array<string, mixed>
     */
    private function api(string $method, string $path, string $body, string $expect, bool $publish = false): array
    {
        $headers = [
            'Accept' => 'application/json',
            'User-Agent' => 'cometbox-php/' . self::VERSION . ' PHP/' . PHP_VERSION,
        ];
        if ($body !== '') {
            $headers['Content-Type'] = 'application/json';
        }
        $secret = $this->adminSecret !== '' && !$publish ? $this->adminSecret : $this->secret;
        if ($secret !== '') {
            $headers['Authorization'] = 'Bearer ' . $secret;
        }

        return $this->pool->call($method, $path, $headers, $body, static function (Response $answer, string $node) use ($method, $path, $expect): array {
            $doc = json_decode($answer->body(), true);
            if (!is_array($doc) || !array_key_exists($expect, $doc)) {
                throw new TransportException(sprintf(
                    'cometbox node %s answered %s %s with %d, but not with the expected JSON: %s',
                    $node,
                    $method,
                    $path,
                    $answer->status(),
                    Text::quote($answer->body(), 120)
                ));
            }

            return $doc;
        });
    }

    /**
     * The nodes' base URLs, as checked and normalised (no trailing slash).
     *
     * @return string[]
     */
    public function nodes(): array
    {
        return $this->nodes;
    }

    /** The transport in use. */
    public function transport(): Transport
    {
        return $this->transport;
    }

    /**
     * @param int|string $index
     * @param mixed      $item
     */
    private static function toMessage($index, $item): Message
    {
        if ($item instanceof Message) {
            return $item;
        }
        if (is_array($item) && array_key_exists('group', $item) && array_key_exists('data', $item)
            && count($item) === (array_key_exists('except', $item) ? 3 : 2)) {
            if (!is_string($item['group']) || !(is_string($item['except'] ?? '') || $item['except'] === null)) {
                throw new InvalidArgumentException(sprintf('messages[%s]: "group" and "except" must be strings', $index));
            }
            try {
                return Message::toGroup($item['group'], $item['data'], $item['except'] ?? null);
            } catch (InvalidArgumentException $e) {
                throw new InvalidArgumentException(sprintf('messages[%s]: %s', $index, $e->getMessage()), 0, $e);
            }
        }
        if (!is_array($item) || !array_key_exists('to', $item) || !array_key_exists('data', $item) || count($item) !== 2) {
            throw new InvalidArgumentException(sprintf(
                'messages[%s]: want a Message, an array with exactly the keys "to" and "data", or one with "group", "data" and perhaps "except", got %s',
                $index,
                is_array($item) ? 'an array with the keys ' . implode(', ', array_map('strval', array_keys($item))) : self::typeOf($item)
            ));
        }
        if (!is_string($item['to'])) {
            throw new InvalidArgumentException(sprintf('messages[%s]: "to" must be a client id string, got %s', $index, self::typeOf($item['to'])));
        }
        try {
            return Message::of($item['to'], $item['data']);
        } catch (InvalidArgumentException $e) {
            throw new InvalidArgumentException(sprintf('messages[%s]: %s', $index, $e->getMessage()), 0, $e);
        }
    }

    /**
     * @param array<mixed> $nodes
     *
     * @return string[] the URLs without a trailing slash
     */
    private static function checkNodes(array $nodes): array
    {
        if ($nodes === []) {
            throw new InvalidArgumentException('nodes: want at least one node URL, e.g. http://127.0.0.1:8080');
        }
        $checked = [];
        foreach ($nodes as $i => $url) {
            if (!is_string($url)) {
                throw new InvalidArgumentException(sprintf('nodes[%s]: want a URL string, got %s', $i, self::typeOf($url)));
            }
            $checked[] = self::checkNode((string) $i, $url);
        }

        return $checked;
    }

    private static function checkNode(string $i, string $url): string
    {
        $parts = parse_url($url);
        $problem = null;
        if ($parts === false || !isset($parts['scheme'], $parts['host'])) {
            $problem = 'not an absolute URL';
        } elseif (!in_array(strtolower($parts['scheme']), ['http', 'https'], true)) {
            $problem = 'the scheme must be http or https';
        } elseif (isset($parts['user']) || isset($parts['pass'])) {
            $problem = 'no credentials in the URL: the publish secret is the constructor\'s secret';
        } elseif (isset($parts['query']) || isset($parts['fragment']) || strpbrk($url, '?#') !== false) {
            $problem = 'no query or fragment';
        } elseif (isset($parts['port']) && ($parts['port'] < 1 || $parts['port'] > 65535)) {
            $problem = 'the port must be 1 to 65535';
        } elseif (preg_match('/[\s\x00-\x1F\x7F]/', $url) === 1) {
            $problem = 'no white space or control characters';
        }
        if ($problem !== null) {
            throw new InvalidArgumentException(sprintf('nodes[%s] %s: %s; want http(s)://host[:port][/path]', $i, Text::quote($url, 80), $problem));
        }

        return rtrim($url, '/');
    }

    private static function checkSecret(string $secret): void
    {
        if (preg_match('/[\x00-\x1F\x7F]/', $secret) === 1) {
            throw new InvalidArgumentException('secret: holds a control character, which cannot travel in an HTTP header');
        }
        if ($secret !== trim($secret)) {
            throw new InvalidArgumentException('secret: starts or ends with white space, which the nodes strip from the header, so it could never match');
        }
    }

    private static function checkSeconds(string $name, float $seconds): void
    {
        if (!is_finite($seconds) || $seconds <= 0) {
            throw new InvalidArgumentException(sprintf('%s %s: want a number of seconds above 0', $name, var_export($seconds, true)));
        }
    }

    /**
     * @param mixed $value
     */
    private static function optionTypeFits(string $key, $value): bool
    {
        switch ($key) {
            case 'nodes':
                return is_array($value);
            case 'secret':
            case 'tokenSecret':
            case 'adminSecret':
            case 'format':
                return is_string($value);
            case 'timeout':
            case 'connectTimeout':
                return is_int($value) || is_float($value);
            case 'transport':
                return $value === null || is_string($value) || $value instanceof Transport;
            case 'maxAttempts':
                return $value === null || is_int($value);
        }

        return false;
    }

    private static function didYouMean(string $key): string
    {
        $best = null;
        $bestDistance = 4;
        foreach (array_keys(self::OPTIONS) as $known) {
            $distance = levenshtein(strtolower(str_replace('_', '', $key)), strtolower($known));
            if ($distance < $bestDistance) {
                $best = $known;
                $bestDistance = $distance;
            }
        }

        return $best === null ? '' : sprintf(' (did you mean "%s"?)', $best);
    }

    /**
     * @param mixed $value
     */
    private static function typeOf($value): string
    {
        return is_object($value) ? get_class($value) : gettype($value);
    }
}
