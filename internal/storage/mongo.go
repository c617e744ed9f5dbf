package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mongooptions "go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"

	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// storage.mongo keeps each vCon as one document in a MongoDB collection,
// shaped as conserver shapes it so that queries written against its
// collections keep working: _id is the uuid, and created_at and each
// dialog's start are BSON dates (conserver's prepare_vcon_for_mongo); every
// other field is the vCon's JSON. Options are conserver's: url (required),
// database ("conserver") and collection ("vcons").
//
// A save replaces the document with that _id, or inserts it: a redelivered
// vCon overwrites, never duplicates. conserver $sets the fields instead,
// which leaves a field a later version of the vCon dropped (a redacted
// analysis) in place; a replace drops it too.
func init() { Register("storage.mongo", newMongo) }

const mongoTimeout = 10 * time.Second

type mongoStorage struct {
	client   *mongo.Client
	coll     *mongo.Collection
	where    string // "database.collection", for errors
	password string // only to scrub it from error text
}

func newMongo(_ context.Context, _ string, raw map[string]any, _ Deps) (Storage, error) {
	o := options.New(raw)
	if !o.Has("url") && o.Has("uri") {
		// conserver's README shows uri; its code reads url only, and
		// fails such a config on every vCon.
		o.Failf("url", `required, missing (conserver reads "url"; the "uri" its README shows is not read)`)
	}
	rawURL := mongoURL(o)
	database := o.Name("database", "conserver")
	collection := o.Name("collection", "vcons")
	if database == "" || len(database) > 63 || strings.ContainsAny(database, "/\\. \"$*<>:|?\x00") {
		o.Fail("database", `a database name (at most 63 bytes, none of /\. "$*<>:|?)`)
	}
	if collection == "" || strings.ContainsAny(collection, "$\x00") || strings.HasPrefix(collection, "system.") {
		o.Fail("collection", `a collection name (no "$", not starting with "system.")`)
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	var password string
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		password, _ = u.User.Password()
	}
	clientOpts := mongooptions.Client().ApplyURI(rawURL).
		SetConnectTimeout(mongoTimeout).
		SetServerSelectionTimeout(mongoTimeout)
	// Connect does not wait for the server: a server that is down fails
	// the first Save, which is retried.
	client, err := mongo.Connect(clientOpts)
	if err != nil {
		return nil, fmt.Errorf("option \"url\": %s", scrub(err.Error(), password))
	}
	return &mongoStorage{
		client:   client,
		coll:     client.Database(database).Collection(collection),
		where:    database + "." + collection,
		password: password,
	}, nil
}

// mongoURL reads url: required, a mongodb:// or mongodb+srv:// URL. It is
// never quoted in an error: it may hold a password.
func mongoURL(o *options.Reader) string {
	if !o.Has("url") {
		if !o.Has("uri") {
			o.Failf("url", "required, missing: the server's mongodb:// URL")
		}
		return ""
	}
	s := o.Secret("url")
	if s == "" {
		if o.Problems() == 0 {
			o.Failf("url", "required, empty: the server's mongodb:// URL")
		}
		return ""
	}
	if !strings.HasPrefix(s, "mongodb://") && !strings.HasPrefix(s, "mongodb+srv://") {
		o.Failf("url", "want a mongodb:// or mongodb+srv:// URL")
		return ""
	}
	if err := mongooptions.Client().ApplyURI(s).Validate(); err != nil {
		var password string
		if u, perr := url.Parse(s); perr == nil && u.User != nil {
			password, _ = u.User.Password()
		}
		o.Failf("url", "not a MongoDB connection string: %s", scrub(mongoURLProblem(err), password))
		return ""
	}
	return s
}

// mongoURLProblem is the driver's complaint without the URL it may quote.
func mongoURLProblem(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg[:i], "mongodb") {
		return msg[i+2:]
	}
	return msg
}

func scrub(msg, secret string) string {
	if secret == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, secret, "[redacted]")
	return strings.ReplaceAll(msg, url.QueryEscape(secret), "[redacted]")
}

func (s *mongoStorage) Save(ctx context.Context, v *vcon.VCon) error {
	uuid := v.UUID()
	if uuid == "" {
		return Permanent(errors.New("mongo: vcon has no uuid"))
	}
	doc, err := mongoDocument(v)
	if err != nil {
		return Permanent(fmt.Errorf("mongo: vcon %s: %w", uuid, err))
	}
	_, err = s.coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: uuid}}, doc, mongooptions.Replace().SetUpsert(true))
	if err != nil {
		return s.fail("save vcon "+uuid, err)
	}
	return nil
}

// Get gives the document back as the vCon's JSON: without _id, the BSON
// dates as RFC 3339 in UTC (to the millisecond, as BSON keeps them).
func (s *mongoStorage) Get(ctx context.Context, uuid string) ([]byte, error) {
	var doc bson.D
	err := s.coll.FindOne(ctx, bson.D{{Key: "_id", Value: uuid}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, s.fail("read vcon "+uuid, err)
	}
	m := make(map[string]any, len(doc))
	for _, e := range doc {
		if e.Key == "_id" {
			continue
		}
		x, err := fromBSON(e.Value)
		if err != nil {
			return nil, fmt.Errorf("mongo: vcon %s in %s: field %q: %w", uuid, s.where, e.Key, err)
		}
		m[e.Key] = x
	}
	return vcon.FromDoc(m).Marshal()
}

// Delete removes the document; a vCon that is not there is deleted
// already.
func (s *mongoStorage) Delete(ctx context.Context, uuid string) error {
	if _, err := s.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: uuid}}); err != nil {
		return s.fail("delete vcon "+uuid, err)
	}
	return nil
}

// SearchParty finds the vCons with a party whose tel or mailto is value.
func (s *mongoStorage) SearchParty(ctx context.Context, field, value string) ([]string, error) {
	if _, err := partyProbe(field, value); err != nil {
		return nil, err
	}
	cur, err := s.coll.Find(ctx, bson.D{{Key: "parties." + field, Value: value}}, mongooptions.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, s.fail("search by party "+field, err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, s.fail("search by party "+field, err)
	}
	uuids := make([]string, len(docs))
	for i, d := range docs {
		uuids[i] = d.ID
	}
	return uuids, nil
}

func (s *mongoStorage) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), mongoTimeout)
	defer cancel()
	return s.client.Disconnect(ctx)
}

// fail names the collection, scrubs the password and marks refusals of
// the document itself (too large, failed validation) as permanent. Server
// selection and network errors (the server is down) and refused logins
// are retried: a login is fixed by changing a Secret.
func (s *mongoStorage) fail(what string, err error) error {
	msg := fmt.Sprintf("mongo: %s in %s: %s", what, s.where, scrub(err.Error(), s.password))
	var se mongo.ServerError
	switch {
	case errors.As(err, &se) && se.HasErrorCode(18): // AuthenticationFailed
		msg += " (check the user and password in url)"
	case errors.As(err, &se) && se.HasErrorCode(13): // Unauthorized
		msg += " (the user in url may not write to " + s.where + ")"
	}
	e := &mongoError{msg: msg, err: err}
	if mongoRefusesDocument(err) {
		return Permanent(e)
	}
	return e
}

type mongoError struct {
	msg string
	err error
}

func (e *mongoError) Error() string { return e.msg }
func (e *mongoError) Unwrap() error { return e.err }

// mongoRefusesDocument reports whether the server (or the driver, before
// sending) refused the document itself, which it does again on a retry.
func mongoRefusesDocument(err error) bool {
	if errors.Is(err, driver.ErrDocumentTooLarge) {
		return true
	}
	var we mongo.WriteException
	if errors.As(err, &we) && len(we.WriteErrors) > 0 {
		return true
	}
	var se mongo.ServerError
	// 2 BadValue, 10334 BSONObjectTooLarge, 17419/17420 document too
	// large after an update, 121 DocumentValidationFailure.
	return errors.As(err, &se) && (se.HasErrorCode(2) || se.HasErrorCode(10334) || se.HasErrorCode(17419) || se.HasErrorCode(17420) || se.HasErrorCode(121))
}

// mongoDocument is the vCon as conserver stores it: _id first, then the
// fields in key order, created_at and dialog[].start as dates when they
// parse (a timestamp that does not parse stays text; conserver fails the
// save instead).
func mongoDocument(v *vcon.VCon) (bson.D, error) {
	keys := make([]string, 0, len(v.Doc()))
	for k := range v.Doc() {
		if k != "_id" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	doc := make(bson.D, 0, len(keys)+1)
	doc = append(doc, bson.E{Key: "_id", Value: v.UUID()})
	for _, k := range keys {
		x, err := toBSON(v.Doc()[k])
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
		doc = append(doc, bson.E{Key: k, Value: x})
	}
	for i := range doc {
		switch doc[i].Key {
		case "created_at":
			doc[i].Value = mongoDate(doc[i].Value)
		case "dialog":
			if dialogs, ok := doc[i].Value.(bson.A); ok {
				for _, d := range dialogs {
					if e, ok := d.(bson.D); ok {
						for j := range e {
							if e[j].Key == "start" {
								e[j].Value = mongoDate(e[j].Value)
							}
						}
					}
				}
			}
		}
	}
	return doc, nil
}

func mongoDate(x any) any {
	s, ok := x.(string)
	if !ok {
		return x
	}
	t, ok := vcon.ParseTime(s)
	if !ok {
		return x
	}
	return bson.NewDateTimeFromTime(t)
}

// toBSON converts a decoded JSON value. Numbers keep their value: whole
// numbers are int64, others doubles; a whole number beyond int64 that a
// double cannot hold exactly is refused rather than rounded.
func toBSON(x any) (any, error) {
	switch t := x.(type) {
	case nil, string, bool, int64, float64:
		return t, nil
	case int:
		return int64(t), nil
	case json.Number:
		return mongoNumber(string(t))
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		d := make(bson.D, 0, len(t))
		for _, k := range keys {
			v, err := toBSON(t[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			d = append(d, bson.E{Key: k, Value: v})
		}
		return d, nil
	case []any:
		a := make(bson.A, len(t))
		for i, e := range t {
			v, err := toBSON(e)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			a[i] = v
		}
		return a, nil
	case []string:
		a := make(bson.A, len(t))
		for i, e := range t {
			a[i] = e
		}
		return a, nil
	}
	// A Go value a link stored: through JSON, as the vCon's encoder does.
	b, err := json.Marshal(x)
	if err != nil {
		return nil, err
	}
	var back any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&back); err != nil {
		return nil, err
	}
	return toBSON(back)
}

func mongoNumber(s string) (any, error) {
	whole := !strings.ContainsAny(s, ".eE")
	if whole {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %s does not fit a double", options.Truncate(s, 40))
	}
	if whole && strconv.FormatFloat(f, 'f', -1, 64) != strings.TrimPrefix(s, "+") {
		// Decimal128 would hold it, but MongoDB-compatible servers
		// (FerretDB, DocumentDB) refuse it; conserver's pymongo fails
		// such a vCon too.
		return nil, fmt.Errorf("whole number %s is beyond MongoDB's 64-bit integers, and a double would round it", options.Truncate(s, 40))
	}
	return f, nil
}

// fromBSON converts a stored value back to what a decoded vCon holds.
func fromBSON(x any) (any, error) {
	switch t := x.(type) {
	case nil, string, bool:
		return t, nil
	case int32:
		return json.Number(strconv.FormatInt(int64(t), 10)), nil
	case int64:
		return json.Number(strconv.FormatInt(t, 10)), nil
	case float64:
		return t, nil
	case bson.Decimal128:
		return json.Number(t.String()), nil
	case bson.DateTime:
		return t.Time().UTC().Format("2006-01-02T15:04:05.000Z07:00"), nil
	case bson.ObjectID:
		return t.Hex(), nil
	case bson.D:
		m := make(map[string]any, len(t))
		for _, e := range t {
			v, err := fromBSON(e.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", e.Key, err)
			}
			m[e.Key] = v
		}
		return m, nil
	case bson.A:
		a := make([]any, len(t))
		for i, e := range t {
			v, err := fromBSON(e)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			a[i] = v
		}
		return a, nil
	}
	return nil, fmt.Errorf("BSON value of type %T has no JSON form", x)
}
